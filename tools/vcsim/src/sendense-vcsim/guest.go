package main

// Acting as the guest OS: every write goes through the disk's writable NBD
// export `live`, i.e. through qemu's block layer, so the dirty bitmaps and
// the snapshots' copy-before-write see it exactly like guest I/O.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

func (d *harnessDisk) openLive() (*nbdConn, error) { return dialNBD(d.nbdSock, "live") }

func (d *harnessDisk) GuestWrite(off int64, data []byte) error {
	c, err := d.openLive()
	if err != nil {
		return err
	}
	defer c.Close()
	if off < 0 {
		return errors.New("offset must not be negative")
	}
	if err := c.WriteAt(uint64(off), data); err != nil {
		return err
	}
	return c.Flush()
}

func (d *harnessDisk) GuestZero(off, length int64) error {
	c, err := d.openLive()
	if err != nil {
		return err
	}
	defer c.Close()
	if off < 0 || length < 0 {
		return errors.New("offset and length must not be negative")
	}
	if err := c.ZeroAt(uint64(off), uint64(length)); err != nil {
		return err
	}
	return c.Flush()
}

func (d *harnessDisk) GuestRead(off, length int64) ([]byte, error) {
	c, err := d.openLive()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if off < 0 || length < 0 {
		return nil, errors.New("offset and length must not be negative")
	}
	return c.ReadAt(uint64(off), uint64(length))
}

// GuestFill overwrites percent of the disk's 64 KiB chunks, chosen at
// random, with new random data, and returns the chunks it wrote.
func (d *harnessDisk) GuestFill(percent float64, seed int64) ([]extent, error) {
	if percent < 0 || percent > 100 {
		return nil, errors.New("percent must be 0..100")
	}
	c, err := d.openLive()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := rand.New(rand.NewSource(seed))
	chunks := int(d.capacity / clusterSize)
	picked := r.Perm(chunks)[:int(float64(chunks)*percent/100)]
	buf := make([]byte, clusterSize)
	written := make([]bool, chunks)
	for _, i := range picked {
		r.Read(buf)
		if err := c.WriteAt(uint64(int64(i)*clusterSize), buf); err != nil {
			return nil, err
		}
		written[i] = true
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	var out []extent
	for i, w := range written {
		if !w {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Length == int64(i)*clusterSize {
			out[n-1].Length += clusterSize
		} else {
			out = append(out, extent{Start: int64(i) * clusterSize, Length: clusterSize})
		}
	}
	return out, nil
}

// firstPartition finds partition 1 from the MBR, or from the GPT behind a
// protective MBR.
func firstPartition(c *nbdConn) (partition, error) {
	mbr, err := c.ReadAt(0, 512)
	if err != nil {
		return partition{}, err
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return partition{}, errors.New("no partition table")
	}
	entry := mbr[446:462]
	if entry[4] != 0xee {
		start := int64(binary.LittleEndian.Uint32(entry[8:]))
		size := int64(binary.LittleEndian.Uint32(entry[12:]))
		if size == 0 {
			return partition{}, errors.New("MBR partition 1 is empty")
		}
		return partition{Offset: start * sectorSize, Size: size * sectorSize}, nil
	}
	hdr, err := c.ReadAt(uint64(sectorSize), uint64(sectorSize))
	if err != nil {
		return partition{}, err
	}
	if string(hdr[:8]) != "EFI PART" {
		return partition{}, errors.New("protective MBR without a GPT header")
	}
	entryLBA := int64(binary.LittleEndian.Uint64(hdr[72:]))
	e, err := c.ReadAt(uint64(entryLBA*sectorSize), 128)
	if err != nil {
		return partition{}, err
	}
	first := int64(binary.LittleEndian.Uint64(e[32:]))
	last := int64(binary.LittleEndian.Uint64(e[40:]))
	if first == 0 || last < first {
		return partition{}, errors.New("GPT partition 1 is empty")
	}
	return partition{Offset: first * sectorSize, Size: (last - first + 1) * sectorSize}, nil
}

// GuestWriteFile writes a file into the ext4 filesystem of partition 1 with
// debugfs (no mount needed): the partition is read over NBD into a scratch
// file, changed by debugfs, and only the 4 KiB blocks that differ are
// written back, so the change tracking sees a guest-sized change.
func (d *harnessDisk) GuestWriteFile(guestPath string, content []byte) (int, error) {
	if err := checkGuestPath(guestPath); err != nil {
		return 0, err
	}
	c, err := d.openLive()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	part, err := firstPartition(c)
	if err != nil {
		return 0, err
	}
	before, err := c.ReadAt(uint64(part.Offset), uint64(part.Size))
	if err != nil {
		return 0, err
	}
	if len(before) < 1082 || binary.LittleEndian.Uint16(before[1080:]) != 0xef53 {
		return 0, errors.New("partition 1 does not hold an ext2/3/4 filesystem (writing files is supported for ext4 only)")
	}
	scratch, err := os.MkdirTemp(d.dir, "guestfile-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(scratch)
	img := filepath.Join(scratch, "part.img")
	src := filepath.Join(scratch, "content")
	if err := os.WriteFile(img, before, 0o600); err != nil {
		return 0, err
	}
	if err := os.WriteFile(src, content, 0o600); err != nil {
		return 0, err
	}
	// checkGuestPath allowed only [A-Za-z0-9._-] names, so the script is safe.
	// debugfs `mkdir` of a directory that exists fails only after it has
	// allocated an inode and a block, leaving an unconnected directory
	// whose block the next write hands to another file: only the missing
	// parents are made, and `rm` only for a file that is there.
	var script strings.Builder
	dir := path.Dir(guestPath)
	parts := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	cur := ""
	missing := false
	for _, p := range parts {
		if p == "" {
			continue
		}
		cur += "/" + p
		if !missing {
			kind, err := debugfsType(img, cur)
			if err != nil {
				return 0, err
			}
			switch kind {
			case "directory":
				continue
			case "":
				missing = true
			default:
				return 0, httpErr(http.StatusBadRequest, "%s exists in the guest and is a %s, not a directory", cur, kind)
			}
		}
		fmt.Fprintf(&script, "mkdir %s\n", cur)
	}
	fmt.Fprintf(&script, "cd %s\n", dir)
	if !missing {
		switch kind, err := debugfsType(img, guestPath); {
		case err != nil:
			return 0, err
		case kind == "regular":
			fmt.Fprintf(&script, "rm %s\n", path.Base(guestPath))
		case kind != "":
			return 0, httpErr(http.StatusBadRequest, "%s exists in the guest and is a %s, not a regular file", guestPath, kind)
		}
	}
	fmt.Fprintf(&script, "write %s %s\n", src, path.Base(guestPath))
	scriptFile := filepath.Join(scratch, "cmds")
	if err := os.WriteFile(scriptFile, []byte(script.String()), 0o600); err != nil {
		return 0, err
	}
	if _, err := runCmd(nil, "debugfs", "-w", "-f", scriptFile, img); err != nil {
		return 0, err
	}
	out, err := runCmd(nil, "debugfs", "-R", "stat "+guestPath, img)
	if err != nil || !bytes.Contains(out, []byte("Inode:")) {
		return 0, fmt.Errorf("debugfs did not create %s: %v %s", guestPath, err, out)
	}
	// The stand-in must not hand the guest a damaged file system: check it
	// before a single block goes back to the disk.
	if report, clean := fsckImage(img); !clean {
		return 0, httpErr(http.StatusInternalServerError, "writing %s would leave the guest's ext4 damaged (nothing was written back): %s", guestPath, report)
	}
	after, err := os.ReadFile(img)
	if err != nil {
		return 0, err
	}
	const block = 4096
	changed := 0
	for off := 0; off < len(after); off += block {
		end := off + block
		if end > len(after) {
			end = len(after)
		}
		if !bytes.Equal(before[off:end], after[off:end]) {
			if err := c.WriteAt(uint64(part.Offset+int64(off)), after[off:end]); err != nil {
				return changed, err
			}
			changed++
		}
	}
	return changed, c.Flush()
}

// debugfsType is the type of the inode at guestPath ("directory",
// "regular", "symlink", ...), or "" when nothing is there.
func debugfsType(img, guestPath string) (string, error) {
	out, err := runCmd(nil, "debugfs", "-c", "-R", "stat "+guestPath, img)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`Type: (\w+)`).FindSubmatch(out)
	if m == nil {
		return "", nil
	}
	return string(m[1]), nil
}

// fsckImage runs `e2fsck -fn` (check everything, change nothing) on an
// ext2/3/4 image: clean, or what e2fsck found.
func fsckImage(img string) (string, bool) {
	cmd := exec.Command("e2fsck", "-fn", img)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

// GuestFsck checks the ext4 file system on partition 1 of the live disk
// with `e2fsck -fn` on a scratch copy (the disk is not changed).
func (d *harnessDisk) GuestFsck() (map[string]interface{}, error) {
	c, err := d.openLive()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	part, err := firstPartition(c)
	if err != nil {
		return nil, err
	}
	data, err := c.ReadAt(uint64(part.Offset), uint64(part.Size))
	if err != nil {
		return nil, err
	}
	if len(data) < 1082 || binary.LittleEndian.Uint16(data[1080:]) != 0xef53 {
		return nil, errors.New("partition 1 does not hold an ext2/3/4 filesystem (fsck is supported for ext4 only)")
	}
	scratch, err := os.MkdirTemp(d.dir, "guestfsck-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	img := filepath.Join(scratch, "part.img")
	if err := os.WriteFile(img, data, 0o600); err != nil {
		return nil, err
	}
	report, clean := fsckImage(img)
	return map[string]interface{}{"clean": clean, "output": report}, nil
}
