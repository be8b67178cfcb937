package main

// A minimal QMP (QEMU Machine Protocol) client: one connection per
// qemu-storage-daemon, commands serialised by a mutex. Asynchronous events
// are skipped; only command replies matter to the harness.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

type qmpClient struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return e.Class + ": " + e.Desc }

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	Event  string          `json:"event"`
	QMP    json.RawMessage `json:"QMP"`
}

// dialQMP connects and leaves capabilities negotiation mode, retrying while
// the daemon is still creating its socket.
func dialQMP(path string, timeout time.Duration) (*qmpClient, error) {
	deadline := time.Now().Add(timeout)
	var conn net.Conn
	var err error
	for {
		conn, err = net.Dial("unix", path)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("qmp connect %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := &qmpClient{conn: conn, r: bufio.NewReader(conn)}
	// Greeting first.
	if _, err := c.readReply(); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := c.Execute("qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *qmpClient) readReply() (*qmpReply, error) {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("qmp read: %w", err)
	}
	var rep qmpReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("qmp decode %q: %w", string(line), err)
	}
	return &rep, nil
}

// Execute runs one QMP command and returns its "return" value.
func (c *qmpClient) Execute(command string, args interface{}) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msg := map[string]interface{}{"execute": command}
	if args != nil {
		msg["arguments"] = args
	}
	data, _ := json.Marshal(msg)
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := c.conn.Write(append(data, '\n')); err != nil {
		return nil, fmt.Errorf("qmp write: %w", err)
	}
	for {
		rep, err := c.readReply()
		if err != nil {
			return nil, err
		}
		if rep.Event != "" || rep.QMP != nil {
			continue
		}
		if rep.Error != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, rep.Error)
		}
		return rep.Return, nil
	}
}

func (c *qmpClient) Close() { _ = c.conn.Close() }
