package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/triggerkit/trigger"
	"github.com/triggerkit/trigger/store/memstore"
)

func TestWebhook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ran := make(chan trigger.Trigger, 4)
	s, err := trigger.New(memstore.New(), trigger.ConsumerFunc(func(ctx context.Context, tr *trigger.Trigger) error {
		ran <- *tr
		return nil
	}), trigger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx)
	for _, tr := range []trigger.Trigger{
		{ID: "deploy", Type: trigger.TypeManual},
		{ID: "order", Type: trigger.TypeEvent, WaitKey: "order-paid", Payload: trigger.Payload{"order": "42"}},
	} {
		if _, err := s.Schedule(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(NewHandler(s))
	defer srv.Close()

	post := func(path, body string) (int, map[string]string) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("POST %s: reply %q is not JSON: %v", path, b, err)
		}
		return resp.StatusCode, out
	}
	wait := func(id string) trigger.Trigger {
		t.Helper()
		select {
		case tr := <-ran:
			if tr.ID != id {
				t.Fatalf("ran %s, want %s", tr.ID, id)
			}
			return tr
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not run", id)
			return trigger.Trigger{}
		}
	}

	for _, tc := range []struct {
		path, body string
		code       int
		key, want  string
	}{
		{"/fire/nope", "", http.StatusNotFound, "error", "no trigger with this id"},
		{"/resume/order-paid", "{not json", http.StatusBadRequest, "error", ""},
		{"/resume/order-paid", "[1,2]", http.StatusBadRequest, "error", ""},
		{"/resume/order-paid", `{"a":1} {"b":2}`, http.StatusBadRequest, "error", ""},
		{"/resume/order-paid", `{"pad":"` + strings.Repeat("x", MaxBody) + `"}`, http.StatusRequestEntityTooLarge, "error", ""},
	} {
		code, out := post(tc.path, tc.body)
		if code != tc.code || (tc.want != "" && out[tc.key] != tc.want) || out[tc.key] == "" {
			t.Errorf("POST %s %.20q: %d %v, want %d with %s %q", tc.path, tc.body, code, out, tc.code, tc.key, tc.want)
		}
	}
	select {
	case tr := <-ran:
		t.Fatalf("bad requests ran %s", tr.ID)
	default:
	}

	if code, out := post("/fire/deploy", ""); code != http.StatusAccepted || out["result"] != "fired" {
		t.Fatalf("fire: %d %v", code, out)
	}
	wait("deploy")
	if code, out := post("/fire/deploy", ""); code != http.StatusConflict {
		t.Errorf("fire of a completed trigger: %d %v, want 409", code, out)
	}

	if code, out := post("/resume/order-paid", `{"paid":true}`); code != http.StatusOK || out["result"] != "delivered" {
		t.Fatalf("resume: %d %v", code, out)
	}
	if tr := wait("order"); tr.Payload["paid"] != true || tr.Payload["order"] != "42" {
		t.Errorf("resumed payload %v, want the body merged", tr.Payload)
	}
	if code, out := post("/resume/order-paid", `{"paid":true}`); code != http.StatusOK || out["result"] != "duplicate" {
		t.Errorf("second resume: %d %v, want 200 duplicate", code, out)
	}
	if code, out := post("/resume/not-yet", ""); code != http.StatusAccepted || out["result"] != "stored" {
		t.Errorf("resume before a waiter: %d %v, want 202 stored", code, out)
	}
}
