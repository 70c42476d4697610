package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxFileSize bounds what Parse reads: a configuration is a few hundred
// bytes, anything this large is not one.
const MaxFileSize = 1 << 20

// Load reads the file at path and parses it with Parse, naming the file in
// errors as path is given.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError: "open config.json: no such file or directory"
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads one JSON object from r, strictly, and returns the validated
// Config with defaults applied to absent keys.
//
// Every problem is reported, not only the first: unknown and duplicate keys
// at any level, values of the wrong type, and everything Validate finds. Each
// is one *KeyError, prefixed with name ("config.json: uplink.adr: unknown
// key"), and they come back joined with errors.Join, one a line. A syntax
// error ends parsing and comes back alone, with its line and column
// ("config.json:3:9: invalid character ...").
func Parse(r io.Reader, name string) (*Config, error) {
	data, err := read(r, name)
	if err != nil {
		return nil, err
	}
	if err := checkSyntax(data, name); err != nil {
		return nil, err
	}
	cfg := Default()
	d := newDecoder(data)
	if err := d.value(reflect.ValueOf(cfg).Elem(), ""); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if all := append(d.errs, d.uncovered(cfg.validate())...); len(all) > 0 {
		return nil, joinNamed(name, all)
	}
	return cfg, nil
}

// read reads the whole input, which must be neither empty nor too large.
func read(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", name, err)
	case len(data) > MaxFileSize:
		return nil, fmt.Errorf("%s: larger than %d bytes, not a configuration file", name, MaxFileSize)
	case len(bytes.TrimSpace(data)) == 0:
		return nil, fmt.Errorf("%s: empty, want a JSON object", name)
	}
	return data, nil
}

// joinNamed prefixes every problem with name and joins them, one a line.
func joinNamed(name string, problems []*KeyError) error {
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = fmt.Errorf("%s: %w", name, p)
	}
	return errors.Join(errs...)
}

// checkSyntax returns the first syntax error of data, trailing data
// included, as "name:line:col: message".
func checkSyntax(data []byte, name string) error {
	if json.Valid(data) {
		return nil
	}
	var v any
	err := json.Unmarshal(data, &v)
	var serr *json.SyntaxError
	if !errors.As(err, &serr) {
		return fmt.Errorf("%s: %w", name, err)
	}
	// Offset counts the bytes read, the wrong one included; at the end of the
	// input, point just past it.
	offset := serr.Offset - 1
	if serr.Error() == "unexpected end of JSON input" {
		offset = int64(len(data))
	}
	line, col := lineCol(data, offset)
	return fmt.Errorf("%s:%d:%d: %w", name, line, col, err)
}

// decoder walks the JSON token stream against the Config struct, filling it
// in and collecting every schema problem (unknown key, duplicate key, wrong
// type). The input must be valid JSON (checkSyntax).
type decoder struct {
	dec  *json.Decoder
	errs []*KeyError
	bad  []string // key paths with a schema problem, see covers
}

func newDecoder(data []byte) *decoder {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return &decoder{dec: dec}
}

// token is the next token. checkSyntax has vouched for the input, so an
// error here is unexpected; the end of the input inside a value is one.
func (d *decoder) token() (json.Token, error) {
	tok, err := d.dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return tok, err
}

// value decodes the next value into v, whose key path is key.
func (d *decoder) value(v reflect.Value, key string) error {
	tok, err := d.token()
	if err != nil {
		return err
	}
	switch v.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			d.wrongType(key, "an object", tok)
			return d.skip(tok)
		}
		return d.object(v, key)
	case reflect.String:
		s, ok := tok.(string)
		if !ok {
			d.wrongType(key, "a string", tok)
			return d.skip(tok)
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := tok.(bool)
		if !ok {
			d.wrongType(key, "a boolean (true or false)", tok)
			return d.skip(tok)
		}
		v.SetBool(b)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			d.problem(key, fmt.Sprintf("cannot decode into %s", v.Type()))
			return d.skip(tok)
		}
		if tok != json.Delim('[') {
			d.wrongType(key, "an array of strings", tok)
			return d.skip(tok)
		}
		return d.strings(v, key)
	case reflect.Int:
		n, ok := tok.(json.Number)
		if !ok {
			d.wrongType(key, "a number", tok)
			return d.skip(tok)
		}
		d.setInt(v, key, n)
	default: // a field type this decoder does not know: a bug, not the file's fault
		d.problem(key, fmt.Sprintf("cannot decode into %s", v.Type()))
		return d.skip(tok)
	}
	return nil
}

// object decodes the members of an object, whose '{' has been read, into the
// struct v.
func (d *decoder) object(v reflect.Value, prefix string) error {
	fields := jsonFields(v.Type())
	seen := make(map[string]bool)
	for d.dec.More() {
		tok, err := d.token()
		if err != nil {
			return err
		}
		name, _ := tok.(string) // inside an object, Token returns keys as strings
		key := joinKey(prefix, name)
		i, known := fields[name]
		dup := seen[name]
		seen[name] = true
		switch {
		case dup: // the first value stays
			d.problem(key, "duplicate key")
		case !known:
			d.problem(key, "unknown key")
		}
		if dup || !known {
			err = d.skipValue()
		} else {
			err = d.value(v.Field(i), key)
		}
		if err != nil {
			return err
		}
	}
	_, err := d.token() // the closing '}'
	return err
}

// strings decodes the elements of an array, whose '[' has been read, into
// the string slice v. An element of another type is reported as
// "key[i]" (0-based, as jq counts) and left out.
func (d *decoder) strings(v reflect.Value, key string) error {
	list := []string{} // never nil: "[]" is an empty list, as the default
	for i := 0; d.dec.More(); i++ {
		tok, err := d.token()
		if err != nil {
			return err
		}
		s, ok := tok.(string)
		if !ok {
			d.wrongType(indexKey(key, i), "a string", tok)
			d.bad = append(d.bad, key) // the indexes Validate would see are off: leave the list to this error
			if err := d.skip(tok); err != nil {
				return err
			}
			continue
		}
		list = append(list, s)
	}
	v.Set(reflect.ValueOf(list))
	_, err := d.token() // the closing ']'
	return err
}

// indexKey is the key path of element i of the list at key.
func indexKey(key string, i int) string {
	return key + "[" + strconv.Itoa(i) + "]"
}

// setInt stores the integer n in v, or records why it cannot.
func (d *decoder) setInt(v reflect.Value, key string, n json.Number) {
	i, err := strconv.ParseInt(n.String(), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && v.OverflowInt(i):
		d.problem(key, fmt.Sprintf("%s is out of range", shorten(n.String())))
	case err != nil:
		d.problem(key, fmt.Sprintf("must be an integer, not %s", shorten(n.String())))
	default:
		v.SetInt(i)
	}
}

// skipValue reads and drops the next value, however deep.
func (d *decoder) skipValue() error {
	tok, err := d.token()
	if err != nil {
		return err
	}
	return d.skip(tok)
}

// skip drops the rest of the value that tok starts.
func (d *decoder) skip(tok json.Token) error {
	depth := 0
	for {
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, err = d.token(); err != nil {
			return err
		}
	}
}

func (d *decoder) wrongType(key, want string, tok json.Token) {
	d.problem(key, fmt.Sprintf("must be %s, not %s", want, jsonType(tok)))
}

func (d *decoder) problem(key, msg string) {
	d.errs = append(d.errs, &KeyError{Key: key, Msg: msg})
	d.bad = append(d.bad, key)
}

// uncovered drops the problems Validate found with keys that already have a
// schema problem, or sit in an object that has one: Validate's view of such
// a key is meaningless ("listen.addr: required" after "listen: must be an
// object, not a string").
func (d *decoder) uncovered(problems []*KeyError) []*KeyError {
	var keep []*KeyError
	for _, p := range problems {
		if !d.covers(p.Key) {
			keep = append(keep, p)
		}
	}
	return keep
}

func (d *decoder) covers(key string) bool {
	for _, b := range d.bad {
		if b == "" || key == b || strings.HasPrefix(key, b+".") || strings.HasPrefix(key, b+"[") {
			return true
		}
	}
	return false
}

// lineCol returns the 1-based line and column (in characters) of the byte at
// offset.
func lineCol(data []byte, offset int64) (line, col int) {
	offset = max(0, min(offset, int64(len(data))))
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[lineStart:])
}

// jsonFields maps the JSON names of a struct type's fields to their indexes.
func jsonFields(t reflect.Type) map[string]int {
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

// jsonType names the JSON type of a token, with an article.
func jsonType(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	if tok == json.Delim('[') {
		return "an array"
	}
	return "an object"
}

// joinKey appends a member name to a key path. A name that is not a plain
// identifier (an unknown key can be anything, a newline included) is quoted,
// so that each error stays on its line and reads unambiguously.
func joinKey(prefix, name string) string {
	if !plainName(name) {
		name = strconv.Quote(shorten(name))
	}
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func plainName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// shorten keeps a value quoted in an error message readable.
func shorten(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
