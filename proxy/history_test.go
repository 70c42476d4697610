package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"redis-proxy/internal/redistest"
)

func TestHistoryKeepsTheLast50NewestFirst(t *testing.T) {
	var h history
	for i := range 60 {
		h.add(Event{Event: fmt.Sprint(i)})
	}
	l := h.list()
	if len(l) != historySize || l[0].Event != "59" || l[49].Event != "10" {
		t.Fatalf("have %d events, first %q, last %q", len(l), l[0].Event, l[len(l)-1].Event)
	}
}

func TestHistoryRecordsOperations(t *testing.T) {
	srv := redistest.Start(t)
	f := newConfigFile(t, srv.Addr)
	p := f.start()
	if st := p.Status(); len(st.History) != 0 || st.Switch.State != "idle" {
		t.Fatalf("a new proxy: history %v, switch %q", st.History, st.Switch.State)
	}
	pause(t, p)
	if err := p.Unpause(); err != nil {
		t.Fatal(err)
	}
	f.cfg.MaxClients = 5
	f.write()
	if err := p.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.writeRaw("{")
	if p.Reload(context.Background()) == nil {
		t.Fatal("a broken file reloaded")
	}
	var have []string
	for _, e := range p.Status().History {
		have = append(have, fmt.Sprintf("%s %v", e.Event, e.OK))
		if time.Since(e.Time) > time.Minute || e.DurationMS < 0 {
			t.Errorf("event %+v", e)
		}
	}
	if want := "[reload false reload true unpause true pause true]"; fmt.Sprint(have) != want {
		t.Errorf("history %v, want %s", have, want)
	}
}
