// Command bench measures the scheduler and prints tables.
//
//	go run ./bench                        # the core table, N = 100,000 and 1,000,000
//	go run ./bench -table durable         # the bbolt store on this machine's disk
//	go run ./bench -table recovery        # start-up with 1,000,000 triggers on disk
//	go run ./bench -table cron            # 10,000 cron triggers firing in the same second, and robfig/cron
//	go run ./bench -table all
//	go run ./bench -n 1000000 -timeline   # where the lateness tail comes from, per 500 ms of due time
//	go run ./bench -claim-ahead -1ns      # as above, claiming each trigger at its due time
//	go run ./bench -n 100000 -tick 10ms   # a longer tick: fewer wake-ups, less processor time, later starts
//	go run ./bench -runs triggerkit -cpuprofile cpu.prof  # one row per N, profiled
//	go run ./bench -n 1000000 -runs triggerkit -trace trace.out  # go tool trace trace.out
//
// Every table runs with GOMAXPROCS=2 unless -procs says otherwise. Numbers
// are printed, never asserted: they depend on the machine.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// claimAhead is the -claim-ahead flag.
var claimAhead time.Duration

// tick is the -tick flag.
var tick time.Duration

func main() {
	var (
		table = flag.String("table", "core", "which table: core, durable, recovery, cron or all")
		ns    = flag.String("n", "100000,1000000", "core table: comma-separated trigger counts")
		runs  = flag.String("runs", "triggerkit,batch,afterfunc", "core table: comma-separated rows for each N: triggerkit (Schedule), batch (ScheduleBatch), afterfunc (time.AfterFunc)")
		cronN = flag.Int("cron-n", 10000, "cron table: how many cron triggers")
		procs = flag.Int("procs", 2, "GOMAXPROCS")
		dir   = flag.String("dir", "", "durable tables: directory for bbolt files (default: a temporary directory)")
		child = flag.String("recovery-child", "", "internal: run one recovery measurement on this file")
		prof  = flag.String("cpuprofile", "", "write a CPU profile to this file")
		mprof = flag.String("mutexprofile", "", "write a mutex contention profile to this file")
		trc   = flag.String("trace", "", "write an execution trace to this file (go tool trace)")
		tl    = flag.Bool("timeline", false, "core table: print lateness by due time, per 500 ms")
		ahead = flag.Duration("claim-ahead", 0, "core and cron tables: Config.ClaimAhead of the schedulers measured (0: the default; negative: claim at the due time)")
		tk    = flag.Duration("tick", 0, "core and cron tables: Config.Tick of the schedulers measured (0: the default, 1ms)")
	)
	flag.Parse()
	timeline = *tl
	claimAhead = *ahead
	tick = *tk
	if *prof != "" {
		pprof.StartCPUProfile(mustCreate(*prof))
		defer pprof.StopCPUProfile()
	}
	if *trc != "" {
		trace.Start(mustCreate(*trc))
		defer trace.Stop()
	}
	if *mprof != "" {
		runtime.SetMutexProfileFraction(1)
		defer func() {
			f := mustCreate(*mprof)
			pprof.Lookup("mutex").WriteTo(f, 0)
			f.Close()
		}()
	}
	runtime.GOMAXPROCS(*procs)
	log.SetFlags(0)

	if *child != "" {
		recoveryChild(*child)
		return
	}
	run := func(name string) bool { return *table == name || *table == "all" }
	ran := false
	if run("core") {
		coreTable(parseCounts(*ns), parseRuns(*runs))
		ran = true
	}
	if run("durable") {
		durableTable(tempDir(*dir))
		ran = true
	}
	if run("recovery") {
		recoveryTable(tempDir(*dir))
		ran = true
	}
	if run("cron") {
		cronTable(*cronN)
		ran = true
	}
	if !ran {
		log.Printf("unknown table %q: use core, durable, recovery, cron or all", *table)
	}
}

// mustCreate creates the file name, for a profile or a trace, or exits.
func mustCreate(name string) *os.File {
	f, err := os.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	return f
}

func parseCounts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("bad -n %q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out
}

func parseRuns(s string) []string {
	out := strings.Split(s, ",")
	for _, r := range out {
		if _, ok := coreRuns[r]; !ok {
			log.Fatalf("bad -runs %q: want triggerkit, batch or afterfunc, separated by commas", s)
		}
	}
	return out
}

func tempDir(dir string) string {
	if dir != "" {
		return dir
	}
	d, err := os.MkdirTemp("", "triggerkit-bench-")
	if err != nil {
		log.Fatal(err)
	}
	return d
}

// table prints rows under a header, aligned.
type table struct{ w *tabwriter.Writer }

func newTable(title string, header ...string) *table {
	fmt.Printf("\n%s\n\n", title)
	t := &table{tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.w, strings.Join(cells, "\t")+"\t")
	t.w.Flush()
}
