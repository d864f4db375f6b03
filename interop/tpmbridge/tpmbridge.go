// Package tpmbridge lets a TSS that speaks the Microsoft TPM 2.0 simulator
// socket protocol (tss.js, used by azure-iot-security-tpm) use swtpm, which
// speaks the raw TPM command protocol on its server socket.
//
// The Microsoft protocol has two TCP ports: the command port (P) carries
// framed commands — TPM_SEND_COMMAND(8) ‖ locality(1) ‖ size(4) ‖ command,
// answered size(4) ‖ response ‖ ack(4)=0 — plus a handshake (15) and
// session end (20); the platform port (P+1) carries power and NV signals,
// each answered with ack 0. The bridge unwraps commands to swtpm's raw
// socket and acks platform signals (swtpm runs with --flags not-need-init,
// so it is powered on already). Test code only: nothing is authenticated.
package tpmbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Microsoft simulator protocol codes (TpmTcpProtocol.h).
const (
	sendCommand = 8
	handshake   = 15
	sessionEnd  = 20
	stop        = 21
	// maxCommand bounds a command (TPM 2.0 buffers are 4 KiB or so).
	maxCommand = 1 << 16
)

// Bridge listens on a command port and the platform port after it.
type Bridge struct {
	// Port is the command port; Port+1 is the platform port.
	Port    int
	network string
	swtpm   string
	cmd     net.Listener
	plat    net.Listener
	mu      sync.Mutex // one command at a time reaches swtpm
	wg      sync.WaitGroup
	closed  chan struct{}
}

// Start listens on 127.0.0.1 on two consecutive free ports and forwards
// commands to swtpm's server socket at addr on network ("unix" for
// --server type=unixio,path=addr; "tcp" for type=tcp).
func Start(network, addr string) (*Bridge, error) {
	for try := 0; try < 20; try++ {
		cmd, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := cmd.Addr().(*net.TCPAddr).Port
		plat, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if err != nil {
			cmd.Close()
			continue
		}
		b := &Bridge{Port: port, network: network, swtpm: addr, cmd: cmd, plat: plat, closed: make(chan struct{})}
		b.wg.Add(2)
		go b.accept(cmd, b.serveCommands)
		go b.accept(plat, b.servePlatform)
		return b, nil
	}
	return nil, errors.New("tpmbridge: no two consecutive free ports")
}

// Close stops listening and waits for the connections to end.
func (b *Bridge) Close() error {
	close(b.closed)
	b.cmd.Close()
	b.plat.Close()
	b.wg.Wait()
	return nil
}

func (b *Bridge) accept(l net.Listener, serve func(net.Conn) error) {
	defer b.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			go func() { <-b.closed; c.Close() }()
			_ = serve(c)
		}()
	}
}

func readU32(r io.Reader) (uint32, error) {
	var b [4]byte
	_, err := io.ReadFull(r, b[:])
	return binary.BigEndian.Uint32(b[:]), err
}

func writeU32s(w io.Writer, vs ...uint32) error {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	_, err := w.Write(b)
	return err
}

// servePlatform acks every platform signal.
func (b *Bridge) servePlatform(c net.Conn) error {
	for {
		code, err := readU32(c)
		if err != nil {
			return err
		}
		if code == sessionEnd || code == stop {
			return nil
		}
		if err := writeU32s(c, 0); err != nil {
			return err
		}
	}
}

func (b *Bridge) serveCommands(c net.Conn) error {
	var tpm net.Conn
	defer func() {
		if tpm != nil {
			tpm.Close()
		}
	}()
	for {
		code, err := readU32(c)
		if err != nil {
			return err
		}
		switch code {
		case handshake:
			if _, err := readU32(c); err != nil { // client version
				return err
			}
			// Server version 1, TpmEndPointInfo: platform available.
			if err := writeU32s(c, 1, 1, 0); err != nil {
				return err
			}
		case sendCommand:
			var loc [1]byte
			if _, err := io.ReadFull(c, loc[:]); err != nil {
				return err
			}
			n, err := readU32(c)
			if err != nil {
				return err
			}
			if n < 10 || n > maxCommand {
				return fmt.Errorf("tpmbridge: command of %d bytes", n)
			}
			cmd := make([]byte, n)
			if _, err := io.ReadFull(c, cmd); err != nil {
				return err
			}
			if tpm == nil {
				if tpm, err = net.Dial(b.network, b.swtpm); err != nil {
					return err
				}
			}
			resp, err := b.exchange(tpm, cmd)
			if err != nil {
				return err
			}
			out := binary.BigEndian.AppendUint32(nil, uint32(len(resp)))
			out = append(out, resp...)
			out = binary.BigEndian.AppendUint32(out, 0)
			if _, err := c.Write(out); err != nil {
				return err
			}
		case sessionEnd, stop:
			return nil
		default:
			if err := writeU32s(c, 0); err != nil {
				return err
			}
		}
	}
}

// exchange sends one raw command to swtpm and reads its response: a
// 10-byte header (tag, size, code) and size-10 more bytes.
func (b *Bridge) exchange(tpm net.Conn, cmd []byte) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := tpm.Write(cmd); err != nil {
		return nil, err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(tpm, hdr); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > maxCommand {
		return nil, fmt.Errorf("tpmbridge: response of %d bytes", size)
	}
	resp := make([]byte, size)
	copy(resp, hdr)
	_, err := io.ReadFull(tpm, resp[10:])
	return resp, err
}
