package main

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"redis-proxy/internal/proc"
	"redis-proxy/internal/redistest"
)

// proxyBinary is the proxy the tests drive: built once from this
// repository, with -race when the tests run with it.
var proxyBinary proc.TestBinary

func TestMain(m *testing.M) {
	code := m.Run()
	proxyBinary.Remove()
	os.Exit(code)
}

// TestSwitchUnderLoad is the bounded run CI does: 20 clients, 5 switches,
// through the proxy binary built from this repository (with -race when
// the tests run with it), and the report must be clean.
func TestSwitchUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test drives real redis-servers and the proxy for a while")
	}
	o := options{
		Clients:     20,
		Switches:    5,
		Interval:    300 * time.Millisecond,
		Subscribers: 6,
		Publishers:  3,
		PublishRate: 100,
		ProxyBin:    proxyBinary.Path(t),
		Log:         testLog{t},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := run(ctx, o, control{})
	if errors.Is(err, redistest.ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: a missing redis-server fails the test)", err)
		}
		t.Skipf("%v (install redis-server or set REDIS_SERVER; with CI=true this fails)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !rep.Pass {
		t.Fatalf("the run failed:\n%s", text.String())
	}
	t.Logf("%v:\n%s", time.Since(start).Round(time.Millisecond), text.String())

	// Pass covers errors, disconnects, losses and duplicates; check that
	// the run was the one asked for.
	checks := []struct {
		what       string
		have, want any
	}{
		{"switches done", rep.SwitchesDone, 5},
		{"proxy pauses", rep.Proxy.Pauses, uint64(5)},
		{"proxy switches (cmd=switch)", rep.Proxy.Switches, uint64(5)},
		{"proxy reloads", rep.Proxy.Reloads, uint64(0)},
		{"proxy clients accepted", rep.Proxy.ClientsAccepted, uint64(20 + 6 + 3)},
		{"writes checked = writes acknowledged", rep.Verification.WritesChecked, rep.WritesAcked},
		{"pub/sub subscribers", rep.PubSub.Subscribers, 6},
		{"pub/sub delivered = expected", rep.PubSub.Delivered, rep.PubSub.Expected},
		{"distinct servers used", len(rep.Switches) + 1, 6},
	}
	for _, c := range checks {
		if c.have != c.want {
			t.Errorf("%s: have %v, want %v", c.what, c.have, c.want)
		}
	}
	if rep.WritesAcked < 1000 {
		t.Errorf("only %d acknowledged writes: the load did not run", rep.WritesAcked)
	}
	if ps := rep.PubSub; ps.Published < 300 || ps.DuringSwitch == 0 || ps.Expected < 2*ps.Published {
		t.Errorf("pub/sub: %d published, %d during a switch, %d expected deliveries: the pub/sub load did not run", ps.Published, ps.DuringSwitch, ps.Expected)
	}
	for _, s := range rep.Switches {
		if s.To == s.From || s.MasterOffset <= 0 {
			t.Errorf("switch %d: from %s to %s at offset %d", s.N, s.From, s.To, s.MasterOffset)
		}
	}
}

// TestSwitchFleet: three proxies in front of the same primary, the first
// with the other two in switch.peers; each cmd=switch goes to it only and
// moves all three. The load (writers of every kind, subscribers and
// publishers) is spread over the three, so a message often crosses from
// one proxy to another. The report must be clean and every proxy must
// have done every pause, kept every client and ended on the last server.
func TestSwitchFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test drives real redis-servers and three proxies")
	}
	const switches = 3
	o := options{
		Proxies:     3,
		Clients:     12,
		Switches:    switches,
		Interval:    300 * time.Millisecond,
		Subscribers: 6,
		Publishers:  3,
		PublishRate: 100,
		ProxyBin:    proxyBinary.Path(t),
		Log:         testLog{t},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := run(ctx, o, control{})
	if errors.Is(err, redistest.ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: a missing redis-server fails the test)", err)
		}
		t.Skipf("%v (install redis-server or set REDIS_SERVER; with CI=true this fails)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !rep.Pass {
		t.Fatalf("the run failed:\n%s", text.String())
	}
	t.Logf("%v:\n%s", time.Since(start).Round(time.Millisecond), text.String())

	// 12 clients, 6 subscribers, 3 publishers: 4+2+1 on each proxy.
	checks := []struct {
		what       string
		have, want any
	}{
		{"proxies", rep.Proxies, 3},
		{"peers reported", len(rep.Peers), 2},
		{"switches done", rep.SwitchesDone, switches},
		{"coordinator switches (cmd=switch)", rep.Proxy.Switches, uint64(switches)},
		{"coordinator pauses", rep.Proxy.Pauses, uint64(switches)},
		{"coordinator clients accepted", rep.Proxy.ClientsAccepted, uint64(7)},
		{"writes checked = writes acknowledged", rep.Verification.WritesChecked, rep.WritesAcked},
		{"pub/sub delivered = expected", rep.PubSub.Delivered, rep.PubSub.Expected},
	}
	for _, pe := range rep.Peers {
		checks = append(checks, []struct {
			what       string
			have, want any
		}{
			{pe.Name + " pauses", pe.Proxy.Pauses, uint64(switches)},
			{pe.Name + " switches (it did none itself)", pe.Proxy.Switches, uint64(0)},
			{pe.Name + " clients accepted", pe.Proxy.ClientsAccepted, uint64(7)},
			{pe.Name + " exit status", pe.Proxy.ExitCode, 0},
		}...)
		if pe.Proxy.Commands < 100 {
			t.Errorf("%s: only %d commands: the load did not go through it", pe.Name, pe.Proxy.Commands)
		}
	}
	for _, c := range checks {
		if c.have != c.want {
			t.Errorf("%s: have %v, want %v", c.what, c.have, c.want)
		}
	}
	if rep.WritesAcked < 1000 {
		t.Errorf("only %d acknowledged writes: the load did not run", rep.WritesAcked)
	}
	for _, s := range rep.Switches {
		if s.To == s.From || s.MasterOffset <= 0 || s.HeldMS <= 0 {
			t.Errorf("switch %d: from %s to %s at offset %d, paused_ms %v", s.N, s.From, s.To, s.MasterOffset, s.HeldMS)
		}
	}
}

// TestSwitchRollsBack: a switch that fails while the proxy is paused is
// rolled back (cmd=unpause on the old uplink, the new server stopped) and
// fails the run, but the clients notice nothing and lose nothing. Its load
// leaves out the clients that pipeline transactions back to back: how long
// a pause takes with them is TestSwitchUnderLoad's check, and a pause
// held to the time limit would fail this test for another reason than
// the roll-back.
func TestSwitchRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test drives real redis-servers and the proxy")
	}
	bin := proxyBinary.Path(t)
	for _, step := range []string{"catch-up", "reload"} {
		t.Run(step, func(t *testing.T) {
			o := options{
				Clients:     6,
				Switches:    3,
				Interval:    200 * time.Millisecond,
				Subscribers: 6,
				Publishers:  3,
				PublishRate: 100,
				ProxyBin:    bin,
				Log:         testLog{t},
				inject:      step,
				kinds:       []clientKind{kindSingle, kindPipeline, kindMulti},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			rep, err := run(ctx, o, control{})
			if errors.Is(err, redistest.ErrNotInstalled) && os.Getenv("CI") != "true" {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			rep.WriteText(&text)
			t.Logf("report:\n%s", text.String())
			if rep.Pass || len(rep.Switches) != 1 {
				t.Fatalf("pass %v after %d switches; want a failure at the first", rep.Pass, len(rep.Switches))
			}
			s := rep.Switches[0]
			if s.OK || s.FailedStep != step || !strings.Contains(s.RolledBack, "cmd=unpause on r1 ") || !strings.Contains(s.RolledBack, "stopped r2 ") {
				t.Errorf("switch 1: ok %v, failed step %q, roll-back %q; want %q, unpause on r1, r2 stopped", s.OK, s.FailedStep, s.RolledBack, step)
			}
			wantRefused := uint64(0)
			if step == "reload" {
				wantRefused = 1
			}
			checks := []struct {
				what       string
				have, want any
			}{
				{"client errors", rep.ClientErrors, int64(0)},
				{"unexpected replies", rep.UnexpectedReplies, int64(0)},
				{"disconnects", rep.Disconnects, int64(0)},
				{"writes lost", rep.WritesLost, int64(0)},
				{"writes duplicated", rep.WritesDuplicated, int64(0)},
				{"failures", len(rep.Failures), 1},
				{"pub/sub delivered = expected", rep.PubSub.Delivered, rep.PubSub.Expected},
				{"proxy reloads", rep.Proxy.Reloads, uint64(0)},
				{"proxy reloads refused", rep.Proxy.ReloadsFailed, wantRefused},
			}
			for _, c := range checks {
				if c.have != c.want {
					t.Errorf("%s: have %v, want %v", c.what, c.have, c.want)
				}
			}
			if rep.Verification == nil || !strings.HasPrefix(s.From, "r1 "+rep.Verification.Server) {
				t.Errorf("verified on %v, want r1 (%s)", rep.Verification, s.From)
			}
		})
	}
}

// testLog sends progress lines to t.Log.
type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func TestInSync(t *testing.T) {
	tests := []struct {
		info string
		want bool
	}{
		{"role:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n", true},
		{"role:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:1\r\n", false},
		{"role:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:0\r\n", false},
		{"role:master\r\n", false},
	}
	for _, tt := range tests {
		if have, _ := inSync(parseInfo(tt.info)); have != tt.want {
			t.Errorf("inSync(%q) = %v, want %v", tt.info, have, tt.want)
		}
	}
}

// TestCaughtUp: the catch-up check waits for the replica's applied offset
// to reach the master's, with the link up.
func TestCaughtUp(t *testing.T) {
	tests := []struct {
		info    string
		target  int64
		want    bool
		wantErr bool
	}{
		{"role:slave\nmaster_link_status:up\nslave_repl_offset:1000\n", 1000, true, false},
		{"role:slave\nmaster_link_status:up\nslave_repl_offset:1014\n", 1000, true, false},
		{"role:slave\nmaster_link_status:up\nslave_repl_offset:999\n", 1000, false, false},
		{"role:slave\nmaster_link_status:down\nslave_repl_offset:1000\n", 1000, false, false},
		{"role:master\nslave_repl_offset:1000\n", 1000, false, false},
		{"role:slave\nmaster_link_status:up\n", 1000, false, true},
	}
	for _, tt := range tests {
		have, state, err := caughtUp(parseInfo(tt.info), tt.target)
		if have != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("caughtUp(%q, %d) = %v, %q, %v; want %v, error %v", tt.info, tt.target, have, state, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseInfo(t *testing.T) {
	have := parseInfo("# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nslave0:ip=127.0.0.1,port=1,state=online\r\n\r\n")
	want := map[string]string{"role": "slave", "master_host": "127.0.0.1", "slave0": "ip=127.0.0.1,port=1,state=online"}
	if !reflect.DeepEqual(have, want) {
		t.Errorf("have %v, want %v", have, want)
	}
	if _, err := intField(have, "slave_repl_offset"); err == nil {
		t.Error("intField of a missing key: no error")
	}
}

func TestCounterCheck(t *testing.T) {
	tests := []struct {
		acked, uncertain, value       int64
		lost, duplicated, uncertainIn int64
	}{
		{10, 0, 10, 0, 0, 0},
		{10, 0, 8, 2, 0, 0},
		{10, 0, 11, 0, 1, 0},
		{10, 2, 11, 0, 0, 1},
		{10, 2, 12, 0, 0, 2},
		{10, 2, 14, 0, 2, 2},
		{10, 2, 9, 1, 0, 0},
	}
	for _, tt := range tests {
		lost, dup, in := counterCheck(tt.acked, tt.uncertain, tt.value)
		if lost != tt.lost || dup != tt.duplicated || in != tt.uncertainIn {
			t.Errorf("counterCheck(%d, %d, %d) = %d, %d, %d; want %d, %d, %d",
				tt.acked, tt.uncertain, tt.value, lost, dup, in, tt.lost, tt.duplicated, tt.uncertainIn)
		}
	}
}

func TestListCheck(t *testing.T) {
	tests := []struct {
		name                      string
		acked, uncertain, actual  []int64
		lost, dup, phantom, order int64
		uncertainIn, uncertainOut int64
	}{
		{name: "exact", acked: []int64{1, 2, 3}, actual: []int64{1, 2, 3}},
		{name: "empty", acked: nil, actual: nil},
		{name: "lost", acked: []int64{1, 2, 3, 4}, actual: []int64{1, 4}, lost: 2},
		{name: "all lost", acked: []int64{1, 2}, actual: nil, lost: 2},
		{name: "duplicated", acked: []int64{1, 2, 3}, actual: []int64{1, 2, 2, 3}, dup: 1},
		{name: "replayed tail", acked: []int64{1, 2, 3}, actual: []int64{1, 2, 3, 2, 3}, dup: 2},
		{name: "never sent", acked: []int64{1, 2}, actual: []int64{1, 2, 7}, phantom: 1},
		{name: "reordered", acked: []int64{1, 2, 3}, actual: []int64{1, 3, 2}, order: 1},
		{name: "uncertain in", acked: []int64{1, 3}, uncertain: []int64{2}, actual: []int64{1, 2, 3}, uncertainIn: 1},
		{name: "uncertain out", acked: []int64{1, 3}, uncertain: []int64{2}, actual: []int64{1, 3}, uncertainOut: 1},
	}
	for _, tt := range tests {
		r := listCheck(tt.acked, tt.uncertain, tt.actual)
		have := []int64{r.lost, r.duplicated, r.phantom, r.outOfOrder, r.uncertainApplied, r.uncertainAbsent}
		want := []int64{tt.lost, tt.dup, tt.phantom, tt.order, tt.uncertainIn, tt.uncertainOut}
		if !reflect.DeepEqual(have, want) {
			t.Errorf("%s: lost, dup, phantom, order, uncertain in, out: have %v, want %v", tt.name, have, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		xs   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{5}, Summary{N: 1, P50: 5, Max: 5}},
		{[]float64{3, 1, 2}, Summary{N: 3, P50: 2, Max: 3}},
		{[]float64{4, 1, 3, 2}, Summary{N: 4, P50: 2, Max: 4}},
	}
	for _, tt := range tests {
		if have := summarize(tt.xs); have != tt.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tt.xs, have, tt.want)
		}
	}
}

// newTestClient is a loadClient without a connection, to judge replies.
func newTestClient() *loadClient {
	return newLoadClient(7, "", time.Second, newEventLog(), new(loadTotals))
}

func intReply(n int64) redistest.Value { return redistest.Value{Type: ':', Int: n} }

func TestClientJudgesReplies(t *testing.T) {
	c := newTestClient()
	c.incrResult(intReply(1), true)
	c.pushResult(1, intReply(1), true)
	c.incrResult(redistest.Value{}, false) // no reply: uncertain
	c.pushResult(2, redistest.Value{}, false)
	c.incrResult(intReply(3), true) // the uncertain one was applied
	c.pushResult(3, intReply(2), true)
	if c.unexpected != 0 || c.errors != 0 {
		t.Fatalf("consistent replies counted as problems: %d unexpected, %d errors; events %v", c.unexpected, c.errors, c.ev.events)
	}
	if c.incrAcked != 2 || c.incrUncertain != 1 || !reflect.DeepEqual(c.listAcked, []int64{1, 3}) || !reflect.DeepEqual(c.listUncertain, []int64{2}) {
		t.Fatalf("record: incr %d+%d, list %v + %v", c.incrAcked, c.incrUncertain, c.listAcked, c.listUncertain)
	}

	// A counter that went back means an acknowledged write was lost.
	c.incrResult(intReply(2), true)
	// An error reply is a client error, and the write is uncertain.
	c.pushResult(4, redistest.Value{Type: '-', Str: "ERR proxy: uplink unavailable"}, true)
	if c.unexpected != 1 || c.errors != 1 || c.listUncertain[len(c.listUncertain)-1] != 4 {
		t.Errorf("have %d unexpected, %d errors, uncertain %v; want 1, 1, ...4", c.unexpected, c.errors, c.listUncertain)
	}
}

func TestClientJudgesTransactions(t *testing.T) {
	ok := redistest.Value{Type: '+', Str: "OK"}
	queued := redistest.Value{Type: '+', Str: "QUEUED"}
	exec := redistest.Value{Type: '*', Elems: []redistest.Value{intReply(1), intReply(1)}}
	c := newTestClient()
	c.multiResult(c.nextSeq(), []redistest.Value{ok, queued, queued, exec})
	if c.incrAcked != 1 || len(c.listAcked) != 1 || c.unexpected+c.errors != 0 {
		t.Fatalf("a clean transaction: incr %d, list %v, %d unexpected, %d errors", c.incrAcked, c.listAcked, c.unexpected, c.errors)
	}

	// EXEC without MULTI on the other side: the block was split.
	c = newTestClient()
	c.multiResult(c.nextSeq(), []redistest.Value{ok, queued, queued, {Type: '-', Str: "ERR EXEC without MULTI"}})
	if c.errors != 1 || c.incrUncertain != 1 || len(c.listUncertain) != 1 {
		t.Errorf("split transaction: %d errors, uncertain %d + %v", c.errors, c.incrUncertain, c.listUncertain)
	}

	// EXEC aborted without WATCH.
	c = newTestClient()
	c.multiResult(c.nextSeq(), []redistest.Value{ok, queued, queued, {Type: '*', Null: true}})
	if c.unexpected != 1 {
		t.Errorf("aborted EXEC: %d unexpected", c.unexpected)
	}

	// The connection broke after MULTI: both writes uncertain.
	c = newTestClient()
	c.multiResult(c.nextSeq(), []redistest.Value{ok})
	if c.incrUncertain != 1 || len(c.listUncertain) != 1 || c.incrAcked != 0 {
		t.Errorf("cut transaction: uncertain %d + %v, acked %d", c.incrUncertain, c.listUncertain, c.incrAcked)
	}
}

// TestClientJudgesTxPipeline: two transactions answered in one batch, a
// batch whose first EXEC failed, and one cut after the first transaction.
func TestClientJudgesTxPipeline(t *testing.T) {
	ok := redistest.Value{Type: '+', Str: "OK"}
	queued := redistest.Value{Type: '+', Str: "QUEUED"}
	exec := func(n int64) redistest.Value {
		return redistest.Value{Type: '*', Elems: []redistest.Value{intReply(n)}}
	}
	tx := []string{"INCR"}
	incr := func(c *loadClient) func(int, redistest.Value, bool) {
		return func(_ int, v redistest.Value, ok bool) { c.incrResult(v, ok) }
	}

	c := newTestClient()
	vs := []redistest.Value{ok, queued, exec(1), ok, queued, exec(2)}
	c.txResult(vs, tx, incr(c))
	c.txResult(vs[3:], tx, incr(c))
	if c.incrAcked != 2 || c.incrUncertain != 0 || c.unexpected+c.errors != 0 {
		t.Errorf("two clean transactions: acked %d, uncertain %d, %d unexpected, %d errors", c.incrAcked, c.incrUncertain, c.unexpected, c.errors)
	}

	c = newTestClient()
	vs = []redistest.Value{ok, queued, {Type: '-', Str: "ERR proxy: uplink connection lost"}, ok, queued, exec(1)}
	c.txResult(vs, tx, incr(c))
	c.txResult(vs[3:], tx, incr(c))
	if c.errors != 1 || c.incrUncertain != 1 || c.incrAcked != 1 || c.unexpected != 0 {
		t.Errorf("first EXEC failed: %d errors, uncertain %d, acked %d, %d unexpected", c.errors, c.incrUncertain, c.incrAcked, c.unexpected)
	}

	c = newTestClient()
	c.txResult([]redistest.Value{ok, queued, exec(1)}, tx, incr(c))
	c.txResult(nil, tx, incr(c))
	if c.incrAcked != 1 || c.incrUncertain != 1 {
		t.Errorf("cut after the first transaction: acked %d, uncertain %d", c.incrAcked, c.incrUncertain)
	}
}

// TestJudgePauses: a pause at or above the bound (1 s with the default
// 5 s read_time_limit_ms) fails the run, failed switches included; the
// disconnects are named by client kind.
func TestJudgePauses(t *testing.T) {
	for _, tt := range []struct {
		rtlMS   int
		pauses  []float64
		bound   float64
		slow    int
		failure string
	}{
		{5000, []float64{1.5, 104.9, 3.2}, 1000, 0, ""},
		{5000, []float64{1.5, 5251.3}, 1000, 1, "switch 2: cmd=pause took 5251.3 ms (the proxy's last_pause_ms: 5250.0), want < 1000 ms: far below read_time_limit_ms 5000"},
		{1000, []float64{499.9, 500}, 500, 1, "switch 2: cmd=pause took 500.0 ms"},
	} {
		rep := &Report{ReadTimeLimitMS: tt.rtlMS}
		for i, ms := range tt.pauses {
			rep.Switches = append(rep.Switches, SwitchResult{N: i + 1, OK: i != 0, PauseMS: ms, ProxyPauseMS: ms - 1.3})
		}
		rep.judge()
		if rep.PauseBoundMS != tt.bound || rep.SlowPauses != tt.slow || rep.Pass != (tt.slow == 0) {
			t.Errorf("limit %d, pauses %v: bound %v, slow %d, pass %v; want %v, %d", tt.rtlMS, tt.pauses, rep.PauseBoundMS, rep.SlowPauses, rep.Pass, tt.bound, tt.slow)
		}
		if tt.failure != "" && (len(rep.Failures) != 1 || !strings.HasPrefix(rep.Failures[0], tt.failure)) {
			t.Errorf("limit %d, pauses %v: failures %q, want %q...", tt.rtlMS, tt.pauses, rep.Failures, tt.failure)
		}
	}

	ev, total := newEventLog(), new(loadTotals)
	var clients []*loadClient
	for id := range 8 {
		clients = append(clients, newLoadClient(id, "", time.Second, ev, total))
	}
	clients[3].disconnects, clients[7].disconnects, clients[1].disconnects = 1, 2, 1
	rep := &Report{ReadTimeLimitMS: 5000}
	rep.collectLoad(clients)
	rep.judge()
	if want := "4 client disconnects (pipeline 1, tx-pipeline 3)"; !slices.Contains(rep.Failures, want) {
		t.Errorf("failures %q, want %q", rep.Failures, want)
	}
}

// TestVerifyFindsLoss runs the verification against a real redis-server
// holding less, more and other than the clients' records.
func TestVerifyFindsLoss(t *testing.T) {
	srv := redistest.Start(t)
	conn := srv.Client(t)
	ev, total := newEventLog(), new(loadTotals)
	clean := newLoadClient(0, "", time.Second, ev, total)
	bad := newLoadClient(17, "", time.Second, ev, total)
	for _, c := range []*loadClient{clean, bad} {
		c.incrAcked = 5
		c.listAcked = []int64{1, 2, 3, 4, 5}
	}
	cmds := [][]any{
		{"SELECT", clean.db}, {"SET", clean.counterKey, 5}, {"RPUSH", clean.listKey, 1, 2, 3, 4, 5},
		// The bad client lost an increment and entry 4, and got 2 twice.
		{"SELECT", bad.db}, {"SET", bad.counterKey, 4}, {"RPUSH", bad.listKey, 1, 2, 2, 3, 5},
	}
	for _, cmd := range cmds {
		if v, err := conn.Do(cmd...); err != nil || v.Err() != nil {
			t.Fatalf("%v: %v %v", cmd, v, err)
		}
	}
	v, err := verify(srv.Addr, []*loadClient{clean, bad})
	if err != nil {
		t.Fatal(err)
	}
	if v.Lost != 2 || v.Duplicated != 1 || v.WritesChecked != 20 || len(v.Problems) != 2 {
		t.Errorf("have lost %d, duplicated %d, checked %d, problems %q; want 2, 1, 20, two about client 17",
			v.Lost, v.Duplicated, v.WritesChecked, v.Problems)
	}
	for _, p := range v.Problems {
		if !strings.HasPrefix(p, "client 17 ") {
			t.Errorf("problem not about client 17: %s", p)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"-h"}, 0},
		{[]string{"-clients", "0"}, 2},
		{[]string{"-switches", "-1"}, 2},
		{[]string{"-interval", "0s"}, 2},
		{[]string{"-forever", "-switches", "3"}, 2},
		{[]string{"-nosuchflag"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"-proxies", "0"}, 2},
		{[]string{"-proxies", "3", "-manual"}, 2},
	}
	for _, tt := range tests {
		if code := mainCode(tt.args, io.Discard, io.Discard); code != tt.code {
			t.Errorf("switchtest %q: exit %d, want %d", tt.args, code, tt.code)
		}
	}

	o, _, err := parseFlags([]string{"-forever"}, io.Discard)
	if err != nil || o.Switches != 0 || !o.Forever || o.Rate != longRunRate {
		t.Errorf("-forever: %+v, %v", o, err)
	}
	o, _, err = parseFlags([]string{"-switches", "0", "-rate", "0"}, io.Discard)
	if err != nil || o.Rate != 0 {
		t.Errorf("-switches 0 -rate 0: rate %v, %v", o.Rate, err)
	}
	o, _, err = parseFlags(nil, io.Discard)
	if err != nil || o.Clients != 50 || o.Switches != 5 || o.Rate != 0 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}
