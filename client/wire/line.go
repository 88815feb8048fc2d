package wire

import (
	"bufio"
	"errors"
)

// ErrLineTooLong is what ReadLine returns for a line longer than its limit.
// The line has been consumed; reading goes on with the next one.
var ErrLineTooLong = errors.New("cannot read line: it is longer than the limit")

// ReadLine returns the next line from r, without its newline. Both ends of
// the wire read with it: the node (child lines) and the client (node
// lines). The line is valid only until the next call.
//
// A line that fits r's buffer is returned without copying: it is r's
// buffer. A longer one is assembled in *long, which keeps its capacity for
// the next call; with long nil, each such line gets a buffer of its own and
// nothing is kept between calls (what a reader that must stay small when
// idle wants).
//
// A line longer than max bytes (the newline not counted) is consumed whole
// and reported as ErrLineTooLong, holding no more than max bytes of it
// meanwhile. At the end of the input a last line without a newline is
// dropped, and r's error (io.EOF) returned; so is any other error of r.
func ReadLine(r *bufio.Reader, max int, long *[]byte) ([]byte, error) {
	frag, err := r.ReadSlice('\n')
	if err == nil {
		if len(frag)-1 > max {
			return nil, ErrLineTooLong
		}
		return frag[:len(frag)-1], nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err // a partial last line is dropped
	}
	var line []byte
	if long != nil {
		line = (*long)[:0]
	}
	tooLong := false
	for {
		// frag is a full buffer without a newline (err is ErrBufferFull),
		// or the end of the line, newline included (err is nil).
		if !tooLong {
			n := len(line) + len(frag)
			if err == nil {
				n-- // the newline
			}
			if n > max {
				tooLong = true
			} else {
				line = append(line, frag...)
			}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			keep(long, line)
			return nil, err
		}
		frag, err = r.ReadSlice('\n')
	}
	keep(long, line)
	if tooLong {
		return nil, ErrLineTooLong
	}
	return line[:len(line)-1], nil
}

// keep hands the assembly buffer back for the next call, if the caller
// keeps one.
func keep(long *[]byte, line []byte) {
	if long != nil {
		*long = line[:0]
	}
}
