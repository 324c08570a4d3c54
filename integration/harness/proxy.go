package harness

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy modes.
const (
	Pass      = "pass"      // forward everything
	Blackhole = "blackhole" // hold every byte until healed (a partition: TCP stays up, nothing arrives)
	Reset     = "reset"     // close every connection and refuse new ones
)

// Proxy is a loopback TCP proxy in front of one etcd member, between one
// sidecar and the cluster, whose traffic the test can cut or delay.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string
	delay time.Duration
	heal  chan struct{} // closed when the mode goes back to pass
	conns map[net.Conn]bool
	held  int // chunks read and not yet forwarded (held back or delayed)
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target
// (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, mode: Pass, heal: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(p.heal)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set changes the mode; delay is added to every chunk forwarded in Pass.
func (p *Proxy) Set(mode string, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = delay
	if mode == p.mode {
		return
	}
	if p.mode == Pass {
		p.heal = make(chan struct{})
	}
	p.mode = mode
	switch mode {
	case Pass:
		close(p.heal)
	case Reset:
		for c := range p.conns {
			c.Close()
		}
	}
}

// Drained reports whether no chunk is held back or delayed in the proxy
// right now. Once the mode is Pass with no delay, the first moment it is
// drained every chunk read during a fault has been forwarded.
func (p *Proxy) Drained() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held == 0
}

// Conns is the number of connections open through the proxy, both sides
// counted: 0 means nothing the proxy received can still reach etcd.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops the proxy and its connections.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Set(Reset, 0)
	p.Set(Pass, 0)
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.mode == Reset
		if !refuse {
			p.conns[c] = true
		}
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	if !p.hold() {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns[up] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, up)
		p.mu.Unlock()
		up.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
}

// hold blocks while the proxy is blackholed; false when it was reset.
func (p *Proxy) hold() bool {
	for {
		p.mu.Lock()
		mode, heal := p.mode, p.heal
		p.mu.Unlock()
		switch mode {
		case Pass:
			return true
		case Reset:
			return false
		}
		<-heal
	}
}

// forward writes one chunk read from the other side, after the fault's
// hold or delay; false when the connection is done.
func (p *Proxy) forward(dst net.Conn, b []byte) bool {
	p.mu.Lock()
	p.held++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.held--
		p.mu.Unlock()
	}()
	if !p.hold() {
		return false
	}
	p.mu.Lock()
	d := p.delay
	p.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	_, err := dst.Write(b)
	return err == nil
}

func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.forward(dst, buf[:n]) {
			return
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
