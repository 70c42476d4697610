package resp

import "bufio"

// Detach gives up the Reader's bufio.Reader at a value boundary when
// nothing is buffered, so that an idle connection's buffer can go back to
// a pool; Reset gives the Reader its next one. It reports false, keeping
// the buffer, when a value is unfinished or bytes are waiting. Until
// Reset, Buffered reports 0 and nothing else may be called.
func (r *Reader) Detach() (*bufio.Reader, bool) {
	if r.br == nil || r.args > 0 || r.body > 0 || r.bodyEnd || r.held || r.br.Buffered() != r.skip {
		return nil, false
	}
	if r.skip > 0 {
		r.br.Discard(r.skip)
		r.skip = 0
	}
	br := r.br
	r.br, r.whole = nil, nil
	return br, true
}
