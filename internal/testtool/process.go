package testtool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// logLines is how many of a peer's last output lines a Process keeps for a failure message.
const logLines = 200

// Process is a peer server a test or bench runs: a broker, a media server. It keeps the
// process's last output lines, knows when it has exited, and stops it as a service manager
// would. Its methods return errors instead of ending a test, so that bench programs can use it.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []string
}

// StartProcess starts cmd with its stdout and stderr read line by line: each line is kept (the
// last logLines of them) and handed to onLine, if it is not nil, from one goroutine in order.
// When cmd asks for its own process group (SysProcAttr.Setpgid), stopping signals the group, so
// that a daemon behind a wrapper script stops too.
func StartProcess(cmd *exec.Cmd, onLine func(line string)) (*Process, error) {
	p := &Process{name: cmd.Path, cmd: cmd, done: make(chan struct{})}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.keep(sc.Text())
			if onLine != nil {
				onLine(sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, r) // an over-long line must not block the peer's writes
	}()
	go func() {
		_ = cmd.Wait()
		w.Close()
		<-read
		close(p.done)
	}()
	return p, nil
}

func (p *Process) keep(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, line)
	if len(p.lines) > logLines {
		p.lines = p.lines[len(p.lines)-logLines:]
	}
}

// Log returns the last lines the process wrote.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Pid is the process id, for reading /proc.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and its output is read.
func (p *Process) Done() <-chan struct{} { return p.done }

// WaitListening waits until addr accepts a TCP connection. It fails early, with the process's
// last output, if the process exits first.
func (p *Process) WaitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s: %s", p.name, addr, p.Log())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %v: %s", p.name, addr, within, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends sig and waits for the process to exit; after within it kills it. It returns
// whether the process exited on sig.
func (p *Process) Stop(sig syscall.Signal, within time.Duration) bool {
	p.signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(within):
		p.Kill()
		return false
	}
}

// Kill ends the process as a crash would (SIGKILL) and waits for it.
func (p *Process) Kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

func (p *Process) signal(sig syscall.Signal) {
	pid := p.cmd.Process.Pid
	if a := p.cmd.SysProcAttr; a != nil && a.Setpgid {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.keep(fmt.Sprintf("testtool: signal %v: %v", sig, err))
	}
}
