package main

// Creation of a simulated disk: a raw image is filled with the configured
// contents (random chunks, or a partition table and a filesystem built
// without mounting anything), converted to a sparse QCOW2 and given the
// persistent dirty bitmap cbt-0 that qemu keeps up to date from then on.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

const (
	mib         = int64(1) << 20
	clusterSize = int64(64) << 10
	sectorSize  = int64(512)
)

// runCmd runs a tool with an argument vector (never a shell) and returns
// its output; the error carries stderr so failures explain themselves.
func runCmd(stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func createDiskImage(qcow2 string, d diskConfig) error {
	size := d.SizeMiB * mib
	raw := qcow2 + ".raw"
	defer os.Remove(raw)
	f, err := os.Create(raw)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		switch d.Content.Type {
		case "random":
			err = fillRandom(f, size, d.Content.Percent, d.Content.Seed)
		case "filesystem":
			err = buildFilesystem(f, raw, size, d.Content)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if _, err := runCmd(nil, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2); err != nil {
		return err
	}
	_, err = runCmd(nil, "qemu-img", "bitmap", "--add", qcow2, "cbt-0")
	return err
}

// fillRandom writes random data into percent of the disk's 64 KiB chunks,
// chosen at random, so the allocated map is scattered like a real disk.
func fillRandom(f *os.File, size int64, percent float64, seed int64) error {
	r := rand.New(rand.NewSource(seed))
	chunks := int(size / clusterSize)
	n := int(float64(chunks) * percent / 100)
	buf := make([]byte, clusterSize)
	for _, idx := range r.Perm(chunks)[:n] {
		r.Read(buf)
		if _, err := f.WriteAt(buf, int64(idx)*clusterSize); err != nil {
			return err
		}
	}
	return nil
}

type partition struct{ Offset, Size int64 }

// partitionDisk writes a one-partition GPT or MBR table starting at 1 MiB.
func partitionDisk(raw, table string) (partition, error) {
	script := "label: gpt\nstart=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
	if table == "mbr" {
		script = "label: dos\nstart=2048, type=83\n"
	}
	if _, err := runCmd([]byte(script), "sfdisk", "-q", "--no-reread", "--no-tell-kernel", raw); err != nil {
		return partition{}, err
	}
	out, err := runCmd(nil, "sfdisk", "--json", raw)
	if err != nil {
		return partition{}, err
	}
	var pt struct {
		PartitionTable struct {
			Partitions []struct {
				Start int64 `json:"start"`
				Size  int64 `json:"size"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil || len(pt.PartitionTable.Partitions) != 1 {
		return partition{}, fmt.Errorf("sfdisk --json %s: unexpected output %q", raw, string(out))
	}
	p := pt.PartitionTable.Partitions[0]
	return partition{Offset: p.Start * sectorSize, Size: p.Size * sectorSize}, nil
}

// stageFiles writes the configured guest files under a staging directory.
func stageFiles(dir string, c contentConfig) error {
	write := func(guestPath string, data []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(guestPath))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o644)
	}
	for p, text := range c.Files {
		if err := write(p, []byte(text)); err != nil {
			return err
		}
	}
	r := rand.New(rand.NewSource(c.Seed))
	for p, n := range c.RandomFiles {
		buf := make([]byte, n)
		r.Read(buf)
		if err := write(p, buf); err != nil {
			return err
		}
	}
	return nil
}

func buildFilesystem(f *os.File, raw string, size int64, c contentConfig) error {
	part, err := partitionDisk(raw, c.PartitionTable)
	if err != nil {
		return err
	}
	staging, err := os.MkdirTemp(filepath.Dir(raw), "staging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if err := stageFiles(staging, c); err != nil {
		return err
	}
	if c.Filesystem == "ext4" {
		// mke2fs writes straight into the partition of the disk image.
		_, err := runCmd(nil, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", staging,
			"-E", fmt.Sprintf("offset=%d", part.Offset), raw, fmt.Sprintf("%dk", part.Size/1024))
		return err
	}
	return buildXFS(f, raw, part, staging)
}

// buildXFS makes the filesystem in a separate partition-sized file (mkfs.xfs
// has no offset option), populated through a mkfs proto file, and copies
// its non-zero chunks into the disk image.
func buildXFS(f *os.File, raw string, part partition, staging string) error {
	partFile := raw + ".part"
	defer os.Remove(partFile)
	if err := os.WriteFile(partFile, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(partFile, part.Size); err != nil {
		return err
	}
	proto := raw + ".proto"
	defer os.Remove(proto)
	var b strings.Builder
	b.WriteString("/dev/null\n0 0\nd--755 0 0\n")
	if err := writeProto(&b, staging, 1); err != nil {
		return err
	}
	b.WriteString("$\n")
	if err := os.WriteFile(proto, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if _, err := runCmd(nil, "mkfs.xfs", "-q", "-f", "-p", proto, partFile); err != nil {
		return err
	}
	src, err := os.Open(partFile)
	if err != nil {
		return err
	}
	defer src.Close()
	buf := make([]byte, clusterSize)
	zero := make([]byte, clusterSize)
	for off := int64(0); off < part.Size; off += clusterSize {
		n, err := src.ReadAt(buf, off)
		if n == 0 && err != nil {
			break
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := f.WriteAt(buf[:n], part.Offset+off); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeProto(b *strings.Builder, dir string, depth int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	indent := strings.Repeat(" ", depth)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			fmt.Fprintf(b, "%s%s d--755 0 0\n", indent, e.Name())
			if err := writeProto(b, p, depth+1); err != nil {
				return err
			}
			fmt.Fprintf(b, "%s$\n", indent)
		} else {
			fmt.Fprintf(b, "%s%s ---644 0 0 %s\n", indent, e.Name(), p)
		}
	}
	return nil
}
