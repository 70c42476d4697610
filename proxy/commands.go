package proxy

import "redis-proxy/resp"

// cmdClass is what the proxy must know about a command.
type cmdClass uint8

const (
	cmdPlain       cmdClass = iota // forwarded as it is
	cmdAuth                        // answered by the proxy
	cmdHello                       // AUTH part answered, the rest forwarded
	cmdQuit                        // +OK, then close
	cmdReset                       // answered by the proxy, uplink dropped
	cmdSelect                      // db remembered for replay
	cmdClient                      // CLIENT SETNAME remembered, CLIENT REPLY refused
	cmdMulti                       // starts a pause unit
	cmdExec                        // ends it
	cmdDiscard                     // ends it
	cmdWatch                       // watched keys are lost with the uplink
	cmdUnwatch                     //
	cmdUnsupported                 // replies nobody asked for, or the replication stream
)

// classify looks a command name up, ignoring case, without allocating.
func classify(name []byte) cmdClass {
	switch len(name) {
	case 4:
		switch {
		case resp.Equal(name, "AUTH"):
			return cmdAuth
		case resp.Equal(name, "QUIT"):
			return cmdQuit
		case resp.Equal(name, "EXEC"):
			return cmdExec
		case resp.Equal(name, "SYNC"):
			return cmdUnsupported
		}
	case 5:
		switch {
		case resp.Equal(name, "HELLO"):
			return cmdHello
		case resp.Equal(name, "RESET"):
			return cmdReset
		case resp.Equal(name, "MULTI"):
			return cmdMulti
		case resp.Equal(name, "WATCH"):
			return cmdWatch
		case resp.Equal(name, "PSYNC"):
			return cmdUnsupported
		}
	case 6:
		switch {
		case resp.Equal(name, "SELECT"):
			return cmdSelect
		case resp.Equal(name, "CLIENT"):
			return cmdClient
		}
	case 7:
		switch {
		case resp.Equal(name, "DISCARD"):
			return cmdDiscard
		case resp.Equal(name, "UNWATCH"):
			return cmdUnwatch
		case resp.Equal(name, "MONITOR"):
			return cmdUnsupported
		}
	case 9:
		if resp.Equal(name, "SUBSCRIBE") {
			return cmdUnsupported
		}
	case 10:
		if resp.Equal(name, "PSUBSCRIBE") || resp.Equal(name, "SSUBSCRIBE") {
			return cmdUnsupported
		}
	case 11:
		if resp.Equal(name, "UNSUBSCRIBE") {
			return cmdUnsupported
		}
	case 12:
		if resp.Equal(name, "PUNSUBSCRIBE") || resp.Equal(name, "SUNSUBSCRIBE") {
			return cmdUnsupported
		}
	}
	return cmdPlain
}
