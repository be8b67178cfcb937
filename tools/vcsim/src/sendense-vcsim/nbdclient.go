package main

// A minimal NBD client (fixed newstyle handshake, NBD_OPT_GO, simple
// replies) used by the harness to act as the guest: writes through the
// disk's writable `live` export go through qemu's block layer, so the dirty
// bitmaps and the snapshot copy-before-write see them exactly as guest I/O.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

const (
	nbdMagic        = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic     = 0x49484156454f5054 // "IHAVEOPT"
	nbdRepMagic     = 0x3e889045565a9
	nbdReqMagic     = 0x25609513
	nbdSimpleMagic  = 0x67446698
	nbdOptGo        = 7
	nbdRepAck       = 1
	nbdRepInfo      = 3
	nbdInfoExport   = 0
	nbdCmdRead      = 0
	nbdCmdWrite     = 1
	nbdCmdDisc      = 2
	nbdCmdFlush     = 3
	nbdCmdWriteZero = 6
	nbdFlagFixed    = 1
	nbdFlagNoZeroes = 2
	nbdMaxRequest   = 4 << 20
)

type nbdConn struct {
	conn   net.Conn
	size   uint64
	handle uint64
}

func dialNBD(socket, export string) (*nbdConn, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &nbdConn{conn: conn}
	if err := c.handshake(export); err != nil {
		conn.Close()
		return nil, fmt.Errorf("nbd handshake with %s export %q: %w", socket, export, err)
	}
	return c, nil
}

func (c *nbdConn) handshake(export string) error {
	var hdr struct {
		Magic    uint64
		OptMagic uint64
		Flags    uint16
	}
	if err := binary.Read(c.conn, binary.BigEndian, &hdr); err != nil {
		return err
	}
	if hdr.Magic != nbdMagic || hdr.OptMagic != nbdOptMagic {
		return errors.New("not a newstyle NBD server")
	}
	if err := binary.Write(c.conn, binary.BigEndian, uint32(nbdFlagFixed|nbdFlagNoZeroes)); err != nil {
		return err
	}
	data := make([]byte, 4+len(export)+2)
	binary.BigEndian.PutUint32(data, uint32(len(export)))
	copy(data[4:], export)
	opt := make([]byte, 16)
	binary.BigEndian.PutUint64(opt, nbdOptMagic)
	binary.BigEndian.PutUint32(opt[8:], nbdOptGo)
	binary.BigEndian.PutUint32(opt[12:], uint32(len(data)))
	if _, err := c.conn.Write(append(opt, data...)); err != nil {
		return err
	}
	for {
		var rep struct {
			Magic uint64
			Opt   uint32
			Type  uint32
			Len   uint32
		}
		if err := binary.Read(c.conn, binary.BigEndian, &rep); err != nil {
			return err
		}
		payload := make([]byte, rep.Len)
		if _, err := io.ReadFull(c.conn, payload); err != nil {
			return err
		}
		switch {
		case rep.Type == nbdRepAck:
			if c.size == 0 {
				return errors.New("server sent no export size")
			}
			return nil
		case rep.Type == nbdRepInfo:
			if len(payload) >= 12 && binary.BigEndian.Uint16(payload) == nbdInfoExport {
				c.size = binary.BigEndian.Uint64(payload[2:])
			}
		case rep.Type&(1<<31) != 0:
			return fmt.Errorf("server refused export: reply type %#x %s", rep.Type, string(payload))
		}
	}
}

func (c *nbdConn) request(cmd uint16, off uint64, length uint32, data []byte) error {
	c.handle++
	req := make([]byte, 28)
	binary.BigEndian.PutUint32(req, nbdReqMagic)
	binary.BigEndian.PutUint16(req[6:], cmd)
	binary.BigEndian.PutUint64(req[8:], c.handle)
	binary.BigEndian.PutUint64(req[16:], off)
	binary.BigEndian.PutUint32(req[24:], length)
	if _, err := c.conn.Write(append(req, data...)); err != nil {
		return err
	}
	if cmd == nbdCmdDisc {
		return nil
	}
	var rep struct {
		Magic  uint32
		Error  uint32
		Handle uint64
	}
	if err := binary.Read(c.conn, binary.BigEndian, &rep); err != nil {
		return err
	}
	if rep.Magic != nbdSimpleMagic || rep.Handle != c.handle {
		return errors.New("unexpected NBD reply")
	}
	if rep.Error != 0 {
		return fmt.Errorf("NBD command %d at %d+%d failed: errno %d", cmd, off, length, rep.Error)
	}
	return nil
}

func (c *nbdConn) checkRange(off, length uint64) error {
	if off+length > c.size || off+length < off {
		return fmt.Errorf("range %d+%d is outside the disk (%d bytes)", off, length, c.size)
	}
	return nil
}

func (c *nbdConn) WriteAt(off uint64, data []byte) error {
	if err := c.checkRange(off, uint64(len(data))); err != nil {
		return err
	}
	for len(data) > 0 {
		n := len(data)
		if n > nbdMaxRequest {
			n = nbdMaxRequest
		}
		if err := c.request(nbdCmdWrite, off, uint32(n), data[:n]); err != nil {
			return err
		}
		off += uint64(n)
		data = data[n:]
	}
	return nil
}

func (c *nbdConn) ZeroAt(off, length uint64) error {
	if err := c.checkRange(off, length); err != nil {
		return err
	}
	for length > 0 {
		n := length
		if n > nbdMaxRequest {
			n = nbdMaxRequest
		}
		if err := c.request(nbdCmdWriteZero, off, uint32(n), nil); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

func (c *nbdConn) ReadAt(off, length uint64) ([]byte, error) {
	if err := c.checkRange(off, length); err != nil {
		return nil, err
	}
	out := make([]byte, 0, length)
	for length > 0 {
		n := length
		if n > nbdMaxRequest {
			n = nbdMaxRequest
		}
		if err := c.request(nbdCmdRead, off, uint32(n), nil); err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.conn, buf); err != nil {
			return nil, err
		}
		out = append(out, buf...)
		off += n
		length -= n
	}
	return out, nil
}

func (c *nbdConn) Flush() error { return c.request(nbdCmdFlush, 0, 0, nil) }

func (c *nbdConn) Close() {
	_ = c.request(nbdCmdDisc, 0, 0, nil)
	_ = c.conn.Close()
}
