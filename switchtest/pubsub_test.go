package main

import (
	"reflect"
	"strings"
	"testing"

	"redis-proxy/internal/redistest"
)

func TestSeqCheck(t *testing.T) {
	a, e, n := pubAcked, pubError, pubNoReply
	tests := []struct {
		name   string
		status []byte
		during []bool
		got    []int64
		want   seqResult
	}{
		{"clean", []byte{a, a, a}, make([]bool, 3), []int64{1, 2, 3}, seqResult{delivered: 3}},
		{"lost during a switch", []byte{a, a, a}, []bool{false, true, false}, []int64{1, 3},
			seqResult{delivered: 2, missing: 1, missingDuring: 1, firstMissing: []int64{2}}},
		{"failed publishes may be missing", []byte{a, e, n, a}, make([]bool, 4), []int64{1, 4}, seqResult{delivered: 2, missingUncertain: 2}},
		{"duplicated", []byte{a, a}, make([]bool, 2), []int64{1, 2, 2}, seqResult{delivered: 3, duplicated: 1}},
		{"reordered", []byte{a, a, a}, make([]bool, 3), []int64{1, 3, 2}, seqResult{delivered: 3, outOfOrder: 1}},
		{"never published", []byte{a}, make([]bool, 1), []int64{1, 2}, seqResult{delivered: 2, phantom: 1}},
	}
	for _, tt := range tests {
		if have := seqCheck(tt.status, tt.during, tt.got); !reflect.DeepEqual(have, tt.want) {
			t.Errorf("%s: have %+v, want %+v", tt.name, have, tt.want)
		}
	}
}

func bulk(s string) redistest.Value { return redistest.Value{Type: '$', Str: s} }

// TestSubscriberTakes: messages are recorded by publisher; a late
// confirmation, a frame of the other protocol, a message on a channel
// that is not its publisher's are counted.
func TestSubscriberTakes(t *testing.T) {
	pubs := []*publisher{{id: 0, channel: pubChannelPrefix + "0"}, {id: 1, channel: pubChannelPrefix + "1"}}
	frame := func(typ byte, parts ...string) redistest.Value {
		v := redistest.Value{Type: typ}
		for _, p := range parts {
			v.Elems = append(v.Elems, bulk(p))
		}
		return v
	}
	s := &subscriber{mode: subPattern, resp3: true, ev: newEventLog(), pubs: pubs, got: make(map[int][]int64)}
	s.take(frame('>', "pmessage", pubPattern, "st:ch:1", "p1:1"))
	s.take(frame('>', "pmessage", pubPattern, "st:ch:0", "p0:1"))
	s.take(frame('>', "pmessage", pubPattern, "st:ch:1", "p1:2"))
	if !reflect.DeepEqual(s.got, map[int][]int64{0: {1}, 1: {1, 2}}) || s.unexpected+s.late != 0 || s.count.Load() != 3 {
		t.Fatalf("got %v, %d unexpected, %d late", s.got, s.unexpected, s.late)
	}
	s.take(redistest.Value{Type: '>', Elems: []redistest.Value{bulk("psubscribe"), bulk(pubPattern), {Type: ':', Int: 1}}})
	s.take(frame('*', "pmessage", pubPattern, "st:ch:1", "p1:3")) // RESP2 framing on RESP3
	s.take(frame('>', "pmessage", pubPattern, "st:ch:0", "p1:4")) // another publisher's channel
	s.take(frame('>', "message", "st:ch:1", "p1:5"))              // not a pattern message
	if s.late != 1 || s.unexpected != 3 || len(s.got[1]) != 2 {
		t.Errorf("late %d, unexpected %d, got %v; want 1, 3, unchanged", s.late, s.unexpected, s.got)
	}
}

// TestPubSubFailures: every non-zero check fails the run.
func TestPubSubFailures(t *testing.T) {
	rep := &Report{ReadTimeLimitMS: 5000, PubSub: &PubSubResult{Subscribers: 6, Published: 10, Missing: 2, MissingDuringSwitch: 1, LateConfirmations: 1}}
	rep.judge()
	if rep.Pass || len(rep.Failures) != 2 || !strings.Contains(rep.Failures[0], "2 pub/sub messages missing (1 published during a switch)") {
		t.Errorf("pass %v, failures %q", rep.Pass, rep.Failures)
	}
	rep = &Report{ReadTimeLimitMS: 5000, PubSub: &PubSubResult{Subscribers: 6, Published: 10}}
	rep.judge()
	if !rep.Pass {
		t.Errorf("a clean pub/sub result fails: %q", rep.Failures)
	}
}
