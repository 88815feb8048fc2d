package api

import (
	"errors"
	"fmt"
)

// The kinds of failure every part of Corral reports, each with the code
// the control plane answers it with (DESIGN.md, error codes). Test with
// errors.Is; an error of a kind reads as a sentence of its own (see
// Errorf), never with the kind's word in the middle.
var (
	ErrInvalid      = errors.New("invalid request") // 400: the request is wrong
	ErrNotPermitted = errors.New("not permitted")   // 403: a policy refuses it
	ErrNotFound     = errors.New("not found")       // 404: no such thing
	ErrConflict     = errors.New("conflict")        // 409: not in this state
	ErrInternal     = errors.New("internal error")  // 500: anything else
	ErrNoCapacity   = errors.New("no capacity")     // 503: a bound is reached
)

// Errorf returns an error whose text is the formatted message alone and
// which matches kind with errors.Is (as well as anything the message wraps
// with %w). So a caller can say `cannot define "enc": no command` and still
// let the control service answer 400.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// Code is the control-plane code of err's kind: 400, 403, 404, 409 or 503,
// and 500 for every other error.
func Code(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return 400
	case errors.Is(err, ErrNotPermitted):
		return 403
	case errors.Is(err, ErrNotFound):
		return 404
	case errors.Is(err, ErrConflict):
		return 409
	case errors.Is(err, ErrNoCapacity):
		return 503
	}
	return 500
}

// KindOf is the inverse of Code: the kind a code stands for, ErrInternal
// for a code it does not know.
func KindOf(code int) error {
	switch code {
	case 400:
		return ErrInvalid
	case 403:
		return ErrNotPermitted
	case 404:
		return ErrNotFound
	case 409:
		return ErrConflict
	case 503:
		return ErrNoCapacity
	}
	return ErrInternal
}
