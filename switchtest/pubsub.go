package main

// Pub/sub under the switches: subscribers and publishers through the
// proxy, beside the writing clients. Publisher p PUBLISHes (or, every
// third one, SPUBLISHes) numbered messages "p<p>:<seq>" to its own
// channel; every subscriber SUBSCRIBEs to all the publishing channels,
// PSUBSCRIBEs to a pattern that matches them, or SSUBSCRIBEs to all the
// shard channels. The proxy re-subscribes each subscriber on every new
// uplink and swallows the confirmations, and publishers wait at the
// pause, so every message published through the proxy must reach every
// subscriber that listens to it exactly once, in publish order, with no
// (un)subscribe confirmation after the initial ones and no disconnect.

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"redis-proxy/internal/redistest"
)

const (
	pubChannelPrefix = "st:ch:"  // PUBLISH channels: st:ch:<publisher>
	pubPattern       = "st:ch:*" // what pattern subscribers PSUBSCRIBE to
	shardPrefix      = "st:sch:" // SPUBLISH channels: st:sch:<publisher>
	drainDeadline    = 10 * time.Second
	subIdleTimeout   = 24 * time.Hour // a subscriber only reads; closing ends it
	maxPubSubProblem = 30
)

// subMode is how a subscriber subscribes.
type subMode int

const (
	subChannel subMode = iota // SUBSCRIBE to every PUBLISH channel
	subPattern                // PSUBSCRIBE st:ch:*
	subShard                  // SSUBSCRIBE to every SPUBLISH channel
	numSubModes
)

func (m subMode) String() string {
	switch m {
	case subChannel:
		return "subscribe"
	case subPattern:
		return "psubscribe"
	case subShard:
		return "ssubscribe"
	}
	return "mode" + strconv.Itoa(int(m))
}

// listens reports whether a subscriber of mode m gets the messages of a
// publisher that shards (SPUBLISH) or not (PUBLISH).
func (m subMode) listens(shard bool) bool { return (m == subShard) == shard }

// publish outcome of one message.
const (
	pubAcked   byte = iota // an integer reply
	pubError               // an error reply (or another reply)
	pubNoReply             // the connection broke before the reply
)

// publisher PUBLISHes or SPUBLISHes numbered messages to its channel.
type publisher struct {
	id      int // 0..publishers-1
	eventID int // its number in the events (after the clients)
	shard   bool
	channel string
	addr    string
	timeout time.Duration
	ev      *eventLog
	epoch   *atomic.Int64 // odd while a switch is in progress

	conn   *redistest.Client
	status []byte // status[seq-1]: pubAcked, pubError, pubNoReply
	during []bool // during[seq-1]: a switch was in progress while it was published

	errors, unexpected, disconnects int64
	shortReceivers                  int64 // integer replies below the subscribers listening
	wantReceivers                   int64
}

func (p *publisher) connect() error {
	conn, err := redistest.Dial(p.addr, p.timeout)
	if err != nil {
		return err
	}
	conn.SetTimeout(p.timeout)
	p.conn = conn
	return nil
}

// run publishes one message every 1/rate s until stop.
func (p *publisher) run(stop <-chan struct{}, rate float64) {
	defer func() {
		if p.conn != nil {
			p.conn.Close()
		}
	}()
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if p.conn == nil {
			if err := p.connect(); err != nil {
				p.disconnects++
				p.ev.add(p.eventID, "disconnect", "publisher reconnect: "+err.Error())
				continue
			}
		}
		p.publishOne()
	}
}

func (p *publisher) publishOne() {
	seq := len(p.status) + 1
	cmd := "PUBLISH"
	if p.shard {
		cmd = "SPUBLISH"
	}
	e0 := p.epoch.Load()
	v, err := p.conn.Do(cmd, p.channel, fmt.Sprintf("p%d:%d", p.id, seq))
	e1 := p.epoch.Load()
	p.during = append(p.during, e0%2 == 1 || e0 != e1)
	switch {
	case err != nil:
		p.status = append(p.status, pubNoReply)
		p.disconnects++
		p.ev.add(p.eventID, "disconnect", fmt.Sprintf("publisher %d: %s %d: %v", p.id, cmd, seq, err))
		p.conn.Close()
		p.conn = nil
	case v.Err() != nil:
		p.status = append(p.status, pubError)
		p.errors++
		p.ev.add(p.eventID, "error reply", fmt.Sprintf("publisher %d: %s %d: %v", p.id, cmd, seq, v.Err()))
	case v.Type != ':':
		p.status = append(p.status, pubError)
		p.unexpected++
		p.ev.add(p.eventID, "unexpected reply", fmt.Sprintf("publisher %d: %s %d: %s, want an integer", p.id, cmd, seq, oneLine(v)))
	default:
		p.status = append(p.status, pubAcked)
		if v.Int < p.wantReceivers {
			p.shortReceivers++
		}
	}
}

// subscriber reads what its subscriptions bring until its connection is
// closed at the end.
type subscriber struct {
	id      int
	eventID int
	mode    subMode
	resp3   bool
	conn    *redistest.Client
	ev      *eventLog
	pubs    []*publisher

	count    atomic.Int64 // messages received, for the drain
	stopping atomic.Bool  // set before the connection is closed at the end

	// Only its goroutine touches these until it has ended.
	got         map[int][]int64 // publisher id -> sequence numbers, as received
	late        int64           // (un)subscribe confirmations after the initial ones
	unexpected  int64
	disconnects int64
}

// subscribe connects and subscribes, reading the initial confirmations.
func (s *subscriber) subscribe(addr string, timeout time.Duration) error {
	conn, err := redistest.Dial(addr, timeout)
	if err != nil {
		return err
	}
	conn.SetTimeout(timeout)
	if s.resp3 {
		v, err := conn.Do("HELLO", 3)
		if err == nil {
			err = v.Err()
		}
		if err != nil {
			conn.Close()
			return fmt.Errorf("HELLO 3: %w", err)
		}
	}
	args := []any{"SUBSCRIBE"}
	switch s.mode {
	case subPattern:
		args = []any{"PSUBSCRIBE", pubPattern}
	case subShard:
		args = []any{"SSUBSCRIBE"}
	}
	if s.mode != subPattern {
		for _, p := range s.pubs {
			if s.mode.listens(p.shard) {
				args = append(args, p.channel)
			}
		}
	}
	want := len(args) - 1
	if want == 0 {
		conn.Close()
		return fmt.Errorf("no publisher for a %s subscriber", s.mode)
	}
	if err := conn.Send(args...); err != nil {
		conn.Close()
		return err
	}
	if err := conn.Flush(); err != nil {
		conn.Close()
		return err
	}
	for i := range want {
		v, err := conn.Receive()
		if err == nil {
			if kind, _, _, ok := s.frame(v); !ok || kind != strings.ToLower(args[0].(string)) {
				err = fmt.Errorf("reply %s, want a %s confirmation", oneLine(v), args[0])
			}
		}
		if err != nil {
			conn.Close()
			return fmt.Errorf("%v: confirmation %d: %w", args, i+1, err)
		}
	}
	conn.SetTimeout(subIdleTimeout)
	s.conn = conn
	return nil
}

// frame splits a pub/sub frame: its kind ("message", "subscribe"...),
// channel and payload; ok is false for anything else, or for a frame of
// the other protocol's type (RESP3 pushes are '>', RESP2 arrays '*').
func (s *subscriber) frame(v redistest.Value) (kind, channel, payload string, ok bool) {
	want := byte('*')
	if s.resp3 {
		want = '>'
	}
	if v.Type != want || len(v.Elems) < 3 {
		return "", "", "", false
	}
	kind = strings.ToLower(v.Elems[0].Str)
	last := v.Elems[len(v.Elems)-1]
	switch kind {
	case "message", "smessage":
		return kind, v.Elems[1].Str, last.Str, len(v.Elems) == 3
	case "pmessage":
		return kind, v.Elems[2].Str, last.Str, len(v.Elems) == 4
	}
	return kind, v.Elems[1].Str, "", len(v.Elems) == 3
}

func (s *subscriber) run() {
	for {
		v, err := s.conn.Receive()
		if err != nil {
			if !s.stopping.Load() {
				s.disconnects++
				s.ev.add(s.eventID, "disconnect", fmt.Sprintf("subscriber %d (%s): %v", s.id, s.mode, err))
			}
			return
		}
		s.take(v)
	}
}

// take records one frame.
func (s *subscriber) take(v redistest.Value) {
	kind, channel, payload, ok := s.frame(v)
	if !ok {
		s.unexpected++
		s.ev.add(s.eventID, "unexpected reply", fmt.Sprintf("subscriber %d (%s): %s", s.id, s.mode, oneLine(v)))
		return
	}
	switch kind {
	case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
		s.late++
		s.ev.add(s.eventID, "unexpected reply", fmt.Sprintf("subscriber %d (%s): late confirmation %s", s.id, s.mode, oneLine(v)))
		return
	}
	wantKind := map[subMode]string{subChannel: "message", subPattern: "pmessage", subShard: "smessage"}[s.mode]
	pid, seq, perr := parsePayload(payload)
	wantChannel := ""
	if perr == nil && pid >= 0 && pid < len(s.pubs) {
		wantChannel = s.pubs[pid].channel
	}
	if kind != wantKind || perr != nil || channel != wantChannel {
		s.unexpected++
		s.ev.add(s.eventID, "unexpected reply", fmt.Sprintf("subscriber %d (%s): %s", s.id, s.mode, oneLine(v)))
		return
	}
	s.got[pid] = append(s.got[pid], seq)
	s.count.Add(1)
}

// parsePayload reads "p<publisher>:<seq>".
func parsePayload(s string) (pid int, seq int64, err error) {
	a, b, ok := strings.Cut(strings.TrimPrefix(s, "p"), ":")
	if !ok || !strings.HasPrefix(s, "p") {
		return 0, 0, fmt.Errorf("payload %q", s)
	}
	if pid, err = strconv.Atoi(a); err != nil {
		return 0, 0, err
	}
	seq, err = strconv.ParseInt(b, 10, 64)
	return pid, seq, err
}

// pubsubLoad is the subscribers and publishers of a run.
type pubsubLoad struct {
	subs  []*subscriber
	pubs  []*publisher
	epoch atomic.Int64 // odd while a switch is in progress

	stop     chan struct{}
	stopOnce sync.Once
	pubWG    sync.WaitGroup
	subWG    sync.WaitGroup
	halted   bool
}

// startPubSub subscribes nSubs subscribers and starts nPubs publishers,
// each publishing rate messages a second; event numbers begin at firstID.
// Subscriber i and publisher i go through addrs[i mod len(addrs)] (the
// proxies of a fleet).
func startPubSub(nSubs, nPubs int, rate float64, addrs []string, timeout time.Duration, ev *eventLog, firstID int) (*pubsubLoad, error) {
	ps := &pubsubLoad{stop: make(chan struct{})}
	for i := range nPubs {
		p := &publisher{id: i, eventID: firstID + nSubs + i, shard: i%3 == 2, addr: addrs[i%len(addrs)], timeout: timeout, ev: ev, epoch: &ps.epoch}
		p.channel = pubChannelPrefix + strconv.Itoa(i)
		if p.shard {
			p.channel = shardPrefix + strconv.Itoa(i)
		}
		ps.pubs = append(ps.pubs, p)
	}
	for i := range nSubs {
		s := &subscriber{id: i, eventID: firstID + i, mode: subMode(i % int(numSubModes)), resp3: (i/int(numSubModes))%2 == 1,
			ev: ev, pubs: ps.pubs, got: make(map[int][]int64)}
		if err := s.subscribe(addrs[i%len(addrs)], timeout); err != nil {
			ps.closeSubs()
			return nil, fmt.Errorf("subscriber %d (%s): %w", i, s.mode, err)
		}
		ps.subs = append(ps.subs, s)
	}
	for _, p := range ps.pubs {
		for _, s := range ps.subs {
			if s.mode.listens(p.shard) {
				p.wantReceivers++
			}
		}
		if err := p.connect(); err != nil {
			ps.closeSubs()
			for _, q := range ps.pubs {
				if q.conn != nil {
					q.conn.Close()
				}
			}
			return nil, fmt.Errorf("publisher %d: %w", p.id, err)
		}
	}
	for _, s := range ps.subs {
		ps.subWG.Go(s.run)
	}
	for _, p := range ps.pubs {
		ps.pubWG.Go(func() { p.run(ps.stop, rate) })
	}
	return ps, nil
}

func (ps *pubsubLoad) closeSubs() {
	for _, s := range ps.subs {
		s.stopping.Store(true)
		s.conn.Close()
	}
}

// beginSwitch and endSwitch bracket a switch (for the classification of
// missing messages).
func (ps *pubsubLoad) beginSwitch() {
	if ps != nil {
		ps.epoch.Add(1)
	}
}

func (ps *pubsubLoad) endSwitch() {
	if ps != nil {
		ps.epoch.Add(1)
	}
}

// expected is how many messages subscriber s should get: the acknowledged
// ones of the publishers it listens to.
func (ps *pubsubLoad) expected(s *subscriber) int64 {
	var n int64
	for _, p := range ps.pubs {
		if !s.mode.listens(p.shard) {
			continue
		}
		for _, st := range p.status {
			if st == pubAcked {
				n++
			}
		}
	}
	return n
}

// halt stops the publishers, waits (up to drainDeadline) until every
// subscriber has what it should, a little longer for any duplicate, then
// closes the subscribers.
func (ps *pubsubLoad) halt() {
	if ps == nil || ps.halted {
		return
	}
	ps.halted = true
	ps.stopOnce.Do(func() { close(ps.stop) })
	ps.pubWG.Wait()
	deadline := time.Now().Add(drainDeadline)
	for time.Now().Before(deadline) {
		done := true
		for _, s := range ps.subs {
			if s.count.Load() < ps.expected(s) {
				done = false
			}
		}
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	ps.closeSubs()
	ps.subWG.Wait()
}

// abort ends everything at once (the clean-up).
func (ps *pubsubLoad) abort() {
	if ps == nil || ps.halted {
		return
	}
	ps.halted = true
	ps.stopOnce.Do(func() { close(ps.stop) })
	ps.pubWG.Wait()
	ps.closeSubs()
	ps.subWG.Wait()
}

// PubSubResult is the judgement of the pub/sub load.
type PubSubResult struct {
	Subscribers int     `json:"subscribers"`
	Mix         string  `json:"mix"`
	Publishers  int     `json:"publishers"`
	RatePerPub  float64 `json:"rate_per_publisher"`

	Published      int64 `json:"published"`        // acknowledged PUBLISH/SPUBLISH
	PublishErrors  int64 `json:"publish_errors"`   // error or unexpected replies
	PublishNoReply int64 `json:"publish_no_reply"` // the connection broke first
	DuringSwitch   int64 `json:"published_during_switch"`
	// ShortReceivers counts acknowledged publishes whose reply (the number
	// of receivers, Redis side) was below the subscribers listening.
	ShortReceivers int64 `json:"short_receivers"`

	Expected            int64 `json:"expected"`              // acknowledged messages x subscribers listening
	Delivered           int64 `json:"delivered"`             // messages the subscribers received
	Missing             int64 `json:"missing"`               // acknowledged, never received
	MissingDuringSwitch int64 `json:"missing_during_switch"` // of Missing: published while a switch was in progress
	Duplicated          int64 `json:"duplicated"`
	OutOfOrder          int64 `json:"out_of_order"`
	Phantom             int64 `json:"phantom"` // a sequence number never published
	// MissingUncertain: messages whose publish got an error or no reply
	// and were not received (allowed).
	MissingUncertain int64 `json:"missing_uncertain"`

	LateConfirmations     int64    `json:"late_confirmations"`
	Unexpected            int64    `json:"unexpected"` // frames that are not a message of the subscription
	SubscriberDisconnects int64    `json:"subscriber_disconnects"`
	PublisherDisconnects  int64    `json:"publisher_disconnects"`
	Problems              []string `json:"problems,omitempty"`
}

// seqCheck judges what one subscriber got from one publisher: status and
// during are the publisher's record, got the sequence numbers as received.
type seqResult struct {
	delivered, missing, missingDuring, missingUncertain, duplicated, outOfOrder, phantom int64
	firstMissing                                                                         []int64
}

func seqCheck(status []byte, during []bool, got []int64) seqResult {
	var r seqResult
	seen := make(map[int64]bool, len(got))
	var prev int64
	for _, q := range got {
		r.delivered++
		switch {
		case q < 1 || q > int64(len(status)):
			r.phantom++
			continue
		case seen[q]:
			r.duplicated++
			continue
		}
		seen[q] = true
		if q < prev {
			r.outOfOrder++
		}
		prev = max(prev, q)
	}
	for i, st := range status {
		q := int64(i + 1)
		if seen[q] {
			continue
		}
		if st != pubAcked {
			r.missingUncertain++
			continue
		}
		r.missing++
		if during[i] {
			r.missingDuring++
		}
		if len(r.firstMissing) < 5 {
			r.firstMissing = append(r.firstMissing, q)
		}
	}
	return r
}

// result judges the whole pub/sub load (after halt).
func (ps *pubsubLoad) result(rate float64) *PubSubResult {
	res := &PubSubResult{Subscribers: len(ps.subs), Publishers: len(ps.pubs), RatePerPub: rate}
	modes := make([]int, numSubModes)
	resp3 := 0
	for _, s := range ps.subs {
		modes[s.mode]++
		if s.resp3 {
			resp3++
		}
	}
	shards := 0
	for _, p := range ps.pubs {
		if p.shard {
			shards++
		}
	}
	res.Mix = fmt.Sprintf("%d SUBSCRIBE, %d PSUBSCRIBE, %d SSUBSCRIBE; %d RESP3, %d RESP2; %d publishers PUBLISH, %d SPUBLISH",
		modes[subChannel], modes[subPattern], modes[subShard], resp3, len(ps.subs)-resp3, len(ps.pubs)-shards, shards)
	for _, p := range ps.pubs {
		for i, st := range p.status {
			switch st {
			case pubAcked:
				res.Published++
			case pubError:
				res.PublishErrors++
			case pubNoReply:
				res.PublishNoReply++
			}
			if p.during[i] {
				res.DuringSwitch++
			}
		}
		res.ShortReceivers += p.shortReceivers
		res.PublisherDisconnects += p.disconnects
	}
	problem := func(format string, args ...any) {
		if len(res.Problems) < maxPubSubProblem {
			res.Problems = append(res.Problems, fmt.Sprintf(format, args...))
		}
	}
	for _, s := range ps.subs {
		res.LateConfirmations += s.late
		res.Unexpected += s.unexpected
		res.SubscriberDisconnects += s.disconnects
		res.Expected += ps.expected(s)
		for _, p := range ps.pubs {
			got := s.got[p.id]
			if !s.mode.listens(p.shard) {
				if len(got) > 0 {
					res.Phantom += int64(len(got))
					problem("subscriber %d (%s) got %d messages of publisher %d (%s), which it does not listen to", s.id, s.mode, len(got), p.id, p.channel)
				}
				continue
			}
			r := seqCheck(p.status, p.during, got)
			res.Delivered += r.delivered
			res.Missing += r.missing
			res.MissingDuringSwitch += r.missingDuring
			res.MissingUncertain += r.missingUncertain
			res.Duplicated += r.duplicated
			res.OutOfOrder += r.outOfOrder
			res.Phantom += r.phantom
			if r.missing+r.duplicated+r.outOfOrder+r.phantom > 0 {
				problem("subscriber %d (%s, RESP%d), publisher %d (%s): %d of %d received: %d missing (%d during a switch; first %s), %d duplicated, %d out of order, %d never published",
					s.id, s.mode, map[bool]int{false: 2, true: 3}[s.resp3], p.id, p.channel, r.delivered, len(p.status),
					r.missing, r.missingDuring, joinInts(r.firstMissing), r.duplicated, r.outOfOrder, r.phantom)
			}
		}
	}
	return res
}

// failures are the pub/sub checks that must be 0.
func (res *PubSubResult) failures() []string {
	var out []string
	for _, c := range []struct {
		n    int64
		what string
	}{
		{res.Missing, fmt.Sprintf("pub/sub messages missing (%d published during a switch)", res.MissingDuringSwitch)},
		{res.Duplicated, "pub/sub messages duplicated"},
		{res.OutOfOrder, "pub/sub messages out of order"},
		{res.Phantom, "pub/sub messages never published (or to a subscriber not listening)"},
		{res.LateConfirmations, "(un)subscribe confirmations after the initial ones"},
		{res.Unexpected, "unexpected frames on subscribers"},
		{res.SubscriberDisconnects, "subscriber disconnects"},
		{res.PublisherDisconnects, "publisher disconnects"},
		{res.PublishErrors, "publish error replies"},
	} {
		if c.n != 0 {
			out = append(out, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if res.Subscribers > 0 && res.Published == 0 {
		out = append(out, "no message was published")
	}
	return out
}

// writeText prints the pub/sub part of the report.
func (res *PubSubResult) writeText(p func(string, ...any)) {
	p("pub/sub (%d subscribers, %d publishers at %g messages/s each: %s)", res.Subscribers, res.Publishers, res.RatePerPub, res.Mix)
	p("  published             %d acknowledged (%d while a switch was in progress), %d error replies, %d without a reply",
		res.Published, res.DuringSwitch, res.PublishErrors, res.PublishNoReply)
	p("  delivered             %d of %d expected (acknowledged messages x subscribers listening)", res.Delivered, res.Expected)
	p("  short receivers       %d   (PUBLISH replies below the subscribers listening; not judged)", res.ShortReceivers)
	p("  checks (each must be 0)")
	p("    missing             %d   (%d of them published during a switch; %d more not received whose publish failed)", res.Missing, res.MissingDuringSwitch, res.MissingUncertain)
	p("    duplicated          %d", res.Duplicated)
	p("    out of order        %d", res.OutOfOrder)
	p("    never published     %d", res.Phantom)
	p("    late confirmations  %d", res.LateConfirmations)
	p("    unexpected frames   %d", res.Unexpected)
	p("    disconnects         %d subscribers, %d publishers", res.SubscriberDisconnects, res.PublisherDisconnects)
	for _, pr := range res.Problems {
		p("  %s", pr)
	}
}
