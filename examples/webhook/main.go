// Command webhook serves an HTTP endpoint that fires triggers and resumes
// waitpoints:
//
//	POST /fire/{id}        run trigger id now (202; 404 unknown; 409 running or final)
//	POST /resume/{token}   resume the waiter of token with the JSON object body
//	                       merged into its payload (200 delivered or duplicate,
//	                       202 stored before the waiter parked, 409 too late;
//	                       400 bad JSON; 413 body over the limit)
//
// Replies are JSON: {"result": "..."} or {"error": "..."}.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

// MaxBody is the largest request body the handler reads, in bytes.
const MaxBody = 64 << 10

// Scheduler is what the handler needs of a *trigger.Scheduler.
type Scheduler interface {
	Fire(ctx context.Context, id string) error
	Resume(ctx context.Context, token string, payload trigger.Payload) (trigger.ResumeResult, error)
}

// NewHandler returns the webhook handler over s.
func NewHandler(s Scheduler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fire/{id}", func(w http.ResponseWriter, r *http.Request) {
		err := s.Fire(r.Context(), r.PathValue("id"))
		switch {
		case err == nil:
			reply(w, http.StatusAccepted, "result", "fired")
		case errors.Is(err, trigger.ErrNotFound):
			reply(w, http.StatusNotFound, "error", "no trigger with this id")
		case errors.Is(err, trigger.ErrClaimed), errors.Is(err, trigger.ErrInvalidState):
			reply(w, http.StatusConflict, "error", err.Error())
		default:
			fail(w, err)
		}
	})
	mux.HandleFunc("POST /resume/{token}", func(w http.ResponseWriter, r *http.Request) {
		var payload trigger.Payload
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
		if err := dec.Decode(&payload); err != nil && !errors.Is(err, io.EOF) {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				reply(w, http.StatusRequestEntityTooLarge, "error", "body over the limit")
				return
			}
			reply(w, http.StatusBadRequest, "error", "body is not a JSON object: "+err.Error())
			return
		}
		if dec.More() {
			reply(w, http.StatusBadRequest, "error", "body holds more than one JSON value")
			return
		}
		res, err := s.Resume(r.Context(), r.PathValue("token"), payload)
		switch {
		case err != nil:
			fail(w, err)
		case res == trigger.ResumeStored:
			reply(w, http.StatusAccepted, "result", res.String())
		case res == trigger.ResumeTooLate:
			reply(w, http.StatusConflict, "result", res.String())
		default:
			reply(w, http.StatusOK, "result", res.String())
		}
	})
	return mux
}

func fail(w http.ResponseWriter, err error) {
	if errors.Is(err, trigger.ErrInvalid) {
		reply(w, http.StatusBadRequest, "error", err.Error())
		return
	}
	log.Printf("webhook: %v", err)
	reply(w, http.StatusInternalServerError, "error", "internal error")
}

func reply(w http.ResponseWriter, code int, key, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{key: msg})
}

func main() {
	ctx := context.Background()
	s, err := trigger.New(memstore.New(), trigger.ConsumerFunc(func(ctx context.Context, t *trigger.Trigger) error {
		log.Printf("run %s (%s) with %v", t.ID, t.Type, t.Payload)
		return nil
	}), trigger.Config{})
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer s.Stop(ctx)
	if _, err := s.Schedule(ctx, trigger.Trigger{ID: "deploy", Type: trigger.TypeManual}); err != nil {
		log.Fatal(err)
	}
	if _, err := s.Schedule(ctx, trigger.Trigger{ID: "order-42", Type: trigger.TypeEvent, WaitKey: "order-42-paid"}); err != nil {
		log.Fatal(err)
	}
	log.Print("try: curl -X POST localhost:8080/fire/deploy; curl -X POST -d '{\"paid\":true}' localhost:8080/resume/order-42-paid")
	srv := &http.Server{Addr: "localhost:8080", Handler: NewHandler(s), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
