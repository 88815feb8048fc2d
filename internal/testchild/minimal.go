package testchild

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// minimalCode is the whole program: pause(2) until a signal ends it.
//
//	start: mov eax, 34 ; pause
//	       syscall
//	       jmp start
var minimalCode = []byte{0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}

// MinimalChildRuns reports whether the minimal child (WriteMinimalChild)
// runs here: it is a linux/amd64 executable.
func MinimalChildRuns() bool { return runtime.GOOS == "linux" && runtime.GOARCH == "amd64" }

// WriteMinimalChild writes to dir, and returns the path of, the least a
// child process can be on linux/amd64: a static executable of 129 bytes
// that waits in pause(2) until a signal ends it. It has no dynamic loader,
// no libc and no runtime to start, so spawning it measures what the
// supervisor itself costs (benchmarks print it next to a real program).
func WriteMinimalChild(dir string) (string, error) {
	if !MinimalChildRuns() {
		return "", errors.New("the minimal child is a linux/amd64 executable")
	}
	const base = 0x400000
	headers := binary.Size(elf.Header64{}) + binary.Size(elf.Prog64{})
	size := uint64(headers + len(minimalCode))
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: base + uint64(headers), Phoff: uint64(binary.Size(elf.Header64{})),
		Ehsize: uint16(binary.Size(elf.Header64{})), Phentsize: uint16(binary.Size(elf.Prog64{})), Phnum: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	p := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: base, Paddr: base,
		Filesz: size, Memsz: size, Align: 0x1000}
	_ = binary.Write(&b, binary.LittleEndian, h)
	_ = binary.Write(&b, binary.LittleEndian, p)
	b.Write(minimalCode)
	path := filepath.Join(dir, "minimal-child")
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		return "", err
	}
	return path, nil
}
