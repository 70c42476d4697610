package admin

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"redis-proxy/proxy"
)

// series is one parsed sample line.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// exposition is a parsed, validated text exposition.
type exposition struct {
	types   map[string]string // family -> counter, gauge, histogram...
	samples []series
}

var metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// parseExposition parses text format 0.0.4 strictly enough to catch what
// Prometheus would reject or misread: every line a comment, blank, or
// `name{labels} value`; one TYPE per family, before its samples; a family's
// samples together; no duplicate series; counters named _total; histogram
// buckets cumulative, ending with +Inf equal to _count, with _sum.
func parseExposition(text string) (*exposition, error) {
	e := &exposition{types: map[string]string{}}
	helps := map[string]bool{}
	seen := map[string]bool{}
	done := map[string]bool{} // families whose samples are over
	current := ""
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE "):
			f := strings.SplitN(line[len("# HELP "):], " ", 2)
			if len(f) != 2 || !metricNameRE.MatchString(f[0]) {
				return nil, fail("bad comment")
			}
			name := f[0]
			if strings.HasPrefix(line, "# HELP ") {
				if helps[name] {
					return nil, fail("second HELP")
				}
				helps[name] = true
				if strings.Contains(strings.NewReplacer(`\\`, "", `\n`, "").Replace(f[1]), `\`) {
					return nil, fail("bad escape in HELP")
				}
				continue
			}
			if _, ok := e.types[name]; ok {
				return nil, fail("second TYPE")
			}
			switch f[1] {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				return nil, fail("unknown type")
			}
			if f[1] == "counter" && !strings.HasSuffix(name, "_total") {
				return nil, fail("counter without _total")
			}
			if done[name] {
				return nil, fail("TYPE after samples")
			}
			e.types[name] = f[1]
			continue
		case strings.HasPrefix(line, "#"):
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fail("%v", err)
		}
		fam := familyOf(s.name, e.types)
		if fam == "" {
			return nil, fail("sample without TYPE")
		}
		if fam != current {
			if done[fam] {
				return nil, fail("family %s is split", fam)
			}
			done[current], current = true, fam
		}
		key := s.name + fmt.Sprint(s.labels)
		if seen[key] {
			return nil, fail("duplicate series")
		}
		seen[key] = true
		if e.types[fam] == "histogram" && s.name == fam {
			return nil, fail("histogram sample without suffix")
		}
		e.samples = append(e.samples, s)
	}
	for fam, typ := range e.types {
		if !helps[fam] {
			return nil, fmt.Errorf("%s has no HELP", fam)
		}
		if typ == "histogram" {
			if err := e.checkHistogram(fam); err != nil {
				return nil, err
			}
		}
	}
	return e, nil
}

func familyOf(name string, types map[string]string) string {
	if _, ok := types[name]; ok {
		return name
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == "histogram" {
			return base
		}
	}
	return ""
}

func parseSample(line string) (series, error) {
	s := series{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name, line = line[:i], line[i:]
	if !metricNameRE.MatchString(s.name) {
		return s, fmt.Errorf("bad name")
	}
	if line[0] == '{' {
		line = line[1:]
		for !strings.HasPrefix(line, "}") {
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return s, fmt.Errorf("bad label")
			}
			name := line[:eq]
			if !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(name) {
				return s, fmt.Errorf("bad label name %q", name)
			}
			line = line[eq+2:]
			var v strings.Builder
			for {
				if line == "" {
					return s, fmt.Errorf("unterminated label value")
				}
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\n' {
					return s, fmt.Errorf("raw newline in label value")
				}
				if c == '\\' {
					if line == "" {
						return s, fmt.Errorf("dangling backslash")
					}
					switch line[0] {
					case '\\', '"':
						v.WriteByte(line[0])
					case 'n':
						v.WriteByte('\n')
					default:
						return s, fmt.Errorf("bad escape \\%c", line[0])
					}
					line = line[1:]
					continue
				}
				v.WriteByte(c)
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %s twice", name)
			}
			s.labels[name] = v.String()
			line = strings.TrimPrefix(line, ",")
		}
		line = line[1:]
	}
	f := strings.Fields(line)
	if !strings.HasPrefix(line, " ") || len(f) < 1 || len(f) > 2 {
		return s, fmt.Errorf("want ' value [timestamp]'")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

func (e *exposition) checkHistogram(fam string) error {
	var les []float64
	var counts []float64
	var sum, count *float64
	for _, s := range e.samples {
		switch s.name {
		case fam + "_bucket":
			le, err := strconv.ParseFloat(s.labels["le"], 64)
			if err != nil || len(s.labels) != 1 {
				return fmt.Errorf("%s: bad bucket labels %v", fam, s.labels)
			}
			if len(les) > 0 && le <= les[len(les)-1] {
				return fmt.Errorf("%s: le not increasing", fam)
			}
			if len(counts) > 0 && s.value < counts[len(counts)-1] {
				return fmt.Errorf("%s: buckets not cumulative", fam)
			}
			les, counts = append(les, le), append(counts, s.value)
		case fam + "_sum":
			sum = &s.value
		case fam + "_count":
			count = &s.value
		}
	}
	switch {
	case len(les) == 0 || !math.IsInf(les[len(les)-1], +1):
		return fmt.Errorf("%s: no +Inf bucket", fam)
	case sum == nil || count == nil:
		return fmt.Errorf("%s: no _sum or _count", fam)
	case *count != counts[len(counts)-1]:
		return fmt.Errorf("%s: +Inf bucket %v != count %v", fam, counts[len(counts)-1], *count)
	}
	return nil
}

func (e *exposition) value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	for _, s := range e.samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i < len(labels); i += 2 {
			match = match && s.labels[labels[i]] == labels[i+1]
		}
		if match {
			return s.value
		}
	}
	t.Errorf("no sample %s%q", name, labels)
	return math.NaN()
}

func TestMetrics(t *testing.T) {
	f := newFake()
	f.st.State = proxy.StatePaused
	f.st.Version = "v1 \"quoted\" back\\slash\nnewline"
	f.st.Uplink = proxy.UplinkInfo{Addr: "[::1]:6380", TLS: true}
	f.st.Counters.UplinkDialErrors = 9
	f.st.Counters.ClientsRejected = 11
	f.st.Counters.Switches, f.st.Counters.Failovers = 3, 2
	f.st.Uplink.Health = proxy.Health{OK: true, Role: "slave", LastCheck: "2026-01-02T03:04:05Z", LatencyMS: 1.5, Failures: 7}
	w := serve(t, Handler(f, nil), request{method: "GET", path: "/metrics"})
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type: %q", ct)
	}
	e, err := parseExposition(w.Body.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, w.Body)
	}
	wantTypes := map[string]string{
		"commands_total": "counter", "errors_total": "counter", "time_limit_disconnects_total": "counter",
		"uplink_dial_errors_total": "counter", "reloads_total": "counter", "pauses_total": "counter",
		"clients_accepted_total": "counter", "clients_rejected_total": "counter", "paused_seconds_total": "counter",
		"clients": "gauge", "active_requests": "gauge", "waiting_requests": "gauge", "raw_connections": "gauge",
		"uptime_seconds": "gauge", "last_pause_seconds": "gauge", "last_reload_seconds": "gauge",
		"state": "gauge", "build_info": "gauge", "uplink_info": "gauge",
		"command_duration_seconds": "histogram", "pause_duration_seconds": "histogram",
		"switches_total": "counter", "failovers_total": "counter",
		"uplink_up": "gauge", "uplink_role": "gauge", "uplink_check_duration_seconds": "gauge",
		"uplink_check_failures_total": "counter",
	}
	for name, typ := range wantTypes {
		if have := e.types[ns+name]; have != typ {
			t.Errorf("%s: type %q, want %q", name, have, typ)
		}
	}
	if len(e.types) != len(wantTypes) {
		t.Errorf("%d families, want %d", len(e.types), len(wantTypes))
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"commands_total", nil, 1234},
		{"errors_total", nil, 5},
		{"uplink_dial_errors_total", nil, 9},
		{"clients_rejected_total", nil, 11},
		{"reloads_total", []string{"result", "ok"}, 1},
		{"reloads_total", []string{"result", "failed"}, 1},
		{"pauses_total", nil, 2},
		{"paused_seconds_total", nil, 3.25},
		{"clients", nil, 3},
		{"active_requests", nil, 2},
		{"waiting_requests", nil, 1},
		{"raw_connections", nil, 4},
		{"uptime_seconds", nil, 3725},
		{"last_pause_seconds", nil, 0.0015},
		{"last_reload_seconds", nil, 0.042},
		{"state", []string{"state", "paused"}, 1},
		{"state", []string{"state", "running"}, 0},
		{"build_info", []string{"version", "v1 \"quoted\" back\\slash\nnewline"}, 1},
		{"uplink_info", []string{"addr", "[::1]:6380", "tls", "true"}, 1},
		{"command_duration_seconds_bucket", []string{"le", "0.001"}, 10},
		{"command_duration_seconds_bucket", []string{"le", "0.1"}, 30},
		{"command_duration_seconds_bucket", []string{"le", "+Inf"}, 31},
		{"command_duration_seconds_sum", nil, 0.5},
		{"command_duration_seconds_count", nil, 31},
		{"pause_duration_seconds_bucket", []string{"le", "+Inf"}, 0},
		{"pause_duration_seconds_count", nil, 0},
		{"switches_total", nil, 3},
		{"failovers_total", nil, 2},
		{"uplink_up", nil, 1},
		{"uplink_role", []string{"role", "slave"}, 1},
		{"uplink_role", []string{"role", "master"}, 0},
		{"uplink_check_duration_seconds", nil, 0.0015},
		{"uplink_check_failures_total", nil, 7},
	} {
		if have := e.value(t, ns+tc.name, tc.labels...); have != tc.want {
			t.Errorf("%s%q: have %v, want %v", tc.name, tc.labels, have, tc.want)
		}
	}
	var states float64
	for _, s := range proxy.AllStates {
		states += e.value(t, ns+"state", "state", string(s))
	}
	if states != 1 {
		t.Errorf("states sum to %v, want 1", states)
	}
}

// TestMetricsHealthChecksOff: with uplink.check_interval_ms 0 there is no
// health to report, and no uplink_up 0 to alert on.
func TestMetricsHealthChecksOff(t *testing.T) {
	f := newFake()
	f.st.Config.Uplink.CheckIntervalMS = 0
	w := serve(t, Handler(f, nil), request{method: "GET", path: "/metrics"})
	e, err := parseExposition(w.Body.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"uplink_up", "uplink_role", "uplink_check_duration_seconds", "uplink_check_failures_total"} {
		if _, ok := e.types[ns+name]; ok {
			t.Errorf("%s with checks off", name)
		}
	}
	if _, ok := e.types[ns+"switches_total"]; !ok {
		t.Errorf("no switches_total")
	}
}

// TestMetricsOdd feeds odd snapshots: the output must stay valid.
func TestMetricsOdd(t *testing.T) {
	for _, st := range []proxy.Status{
		{},
		{State: "bogus"},
		{Latency: proxy.Histogram{Bounds: []float64{1, 2}, Counts: []uint64{1}, Count: 1}},
		{Latency: proxy.Histogram{Bounds: []float64{0.5, math.Inf(1)}, Counts: []uint64{1, 2}, Count: 2}},
		{UptimeS: math.NaN(), Counters: proxy.Counters{PausedSeconds: math.Inf(1)}},
	} {
		var b bytes.Buffer
		writeMetrics(&b, st)
		if _, err := parseExposition(b.String()); err != nil {
			t.Errorf("%+v: %v\n%s", st, err, b.String())
		}
	}
}

func TestParseExpositionRejects(t *testing.T) {
	for _, bad := range []string{
		"x 1\n",
		"# TYPE x gauge\n# HELP x h\nx{a=\"b} 1\n",
		"# TYPE x gauge\n# HELP x h\nx{a=\"\\q\"} 1\n",
		"# TYPE x counter\n# HELP x h\nx 1\n",
		"# TYPE x gauge\n# HELP x h\nx 1\nx 2\n",
		"# TYPE x gauge\n# HELP x h\n# TYPE y gauge\n# HELP y h\nx{a=\"1\"} 1\ny 1\nx{a=\"2\"} 1\n",
		"# TYPE h histogram\n# HELP h h\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
		"# TYPE h histogram\n# HELP h h\nh_bucket{le=\"1\"} 1\nh_sum 0\nh_count 1\n",
		"# TYPE h histogram\n# HELP h h\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 1\n",
		"# TYPE x gauge\n# HELP x h\nx one\n",
		"# TYPE x gauge\nx 1\n",
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
