package proxy

import (
	"strconv"
	"strings"

	"redis-proxy/resp"
)

// replay is the session state a new uplink connection must be given: what
// the client set on its own connection and Redis keeps per connection.
// The reply goroutine writes it as it learns each outcome from Redis's
// reply; the request goroutine reads it only while the reply goroutine
// waits for an uplink connection.
type replay struct {
	db      int64
	proto   int64
	name    string
	libName string   // CLIENT SETINFO LIB-NAME
	libVer  string   // CLIENT SETINFO LIB-VER
	monitor bool     // MONITOR
	noEvict bool     // CLIENT NO-EVICT on
	subs    subSet   // channels, patterns and shard channels, as confirmed
	track   tracking // CLIENT TRACKING

	// CLIENT REPLY OFF or SKIP in force: the request goroutine's state,
	// set on the copy a session dials with. Replayed last: no reply comes.
	replyOff, replySkip bool

	// With listen.forward_auth, the client's last credentials Redis
	// accepted (user "" for AUTH <pass>), replayed in place of the
	// uplink's.
	authed bool
	user   string
	pass   string

	// checkServer is set on the copy a session dials with while the proxy
	// knows scripts: the round trip asks the server's run_id.
	checkServer bool

	// forwardAuth is not learnt: the session sets it on the copy it dials
	// with, from listen.forward_auth.
	forwardAuth bool
}

// newReplay is the state of a new connection.
func newReplay() replay { return replay{proto: 2} }

// replayed is one command of the replay round trip.
type replayed struct {
	name    string
	mayFail bool // a refusal is ignored (an older Redis without the command)
}

// commands appends, after the AUTH (the proxy's own, or with
// forwardAuth the client's last accepted one, if any), every command that
// restores st on a new connection, and returns them in order (for error
// messages). It is the one list of what is replayed. A client's
// connection ends with CLIENT ID (withID): the proxy learns the
// connection's id in the same round trip.
func (st replay) commands(b []byte, t *target, withID bool) ([]byte, []replayed) {
	var sent []replayed
	add := func(mayFail bool, args ...string) {
		b = resp.AppendCommand(b, args...)
		sent = append(sent, replayed{name: args[0], mayFail: mayFail})
	}
	switch {
	case st.forwardAuth:
		switch {
		case !st.authed:
		case st.user != "":
			add(false, "AUTH", st.user, st.pass)
		default:
			add(false, "AUTH", st.pass)
		}
	case t.user != "":
		add(false, "AUTH", t.user, t.pass)
	case t.pass != "":
		add(false, "AUTH", t.pass)
	}
	if st.proto == 3 {
		add(false, "HELLO", "3")
	}
	if st.db != 0 {
		add(false, "SELECT", strconv.FormatInt(st.db, 10))
	}
	if st.name != "" {
		add(false, "CLIENT", "SETNAME", st.name)
	}
	if st.libName != "" {
		add(true, "CLIENT", "SETINFO", "LIB-NAME", st.libName)
	}
	if st.libVer != "" {
		add(true, "CLIENT", "SETINFO", "LIB-VER", st.libVer)
	}
	if st.noEvict {
		add(true, "CLIENT", "NO-EVICT", "on")
	}
	if st.track.on {
		args := []string{"CLIENT", "TRACKING", "ON"}
		if t := st.track.redirect; t != nil {
			args = append(args, "REDIRECT", strconv.FormatInt(t.upID.Load(), 10))
		}
		add(st.track.redirect != nil, append(args, st.track.opts...)...)
	}
	if withID {
		add(true, "CLIENT", "ID")
	}
	if st.checkServer {
		add(true, "INFO", "server") // which server instance (server.go)
	}
	if st.monitor {
		add(false, "MONITOR")
	}
	return b, sent
}

// learn updates st from the reply to rec (ok: it was not an error).
func (st *replay) learn(rec *record, ok bool) {
	if !ok {
		return
	}
	switch rec.kind {
	case kindSelect:
		st.db = int64(rec.arg)
	case kindHello:
		if rec.arg > 0 {
			st.proto = int64(rec.arg)
		}
		name := rec.val()
		if creds, ok := rec.creds(); ok {
			name, _, _ = strings.Cut(name, "\x00")
			st.setCreds(creds)
		}
		if rec.flags&flagName != 0 {
			st.name = name
		}
	case kindSetName:
		st.name = rec.val()
	case kindMonitor:
		st.monitor = true
	case kindNoEvict:
		st.noEvict = rec.arg == 1
	case kindTracking:
		if rec.arg == 0 {
			st.track = tracking{}
		} else {
			st.track = tracking{on: true, opts: decodeTracking(rec.val()), redirect: rec.peer()}
		}
	case kindSetInfo:
		if rec.arg == setInfoLibName {
			st.libName = rec.val()
		} else {
			st.libVer = rec.val()
		}
	case kindAuth:
		st.setCreds(rec.val())
	}
}

// credsVal is how a record carries credentials to learn: user, NUL, pass
// (a password may hold NULs; Redis refuses none in a user name, but a
// user "a\x00b" would be replayed as the wrong pair and fail).
func credsVal(user, pass []byte) string {
	return string(user) + "\x00" + string(pass)
}

func (st *replay) setCreds(v string) {
	st.user, st.pass, _ = strings.Cut(v, "\x00")
	st.authed = true
}
