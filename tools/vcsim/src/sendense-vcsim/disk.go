package main

// One simulated virtual disk: a QCOW2 image served by its own
// qemu-storage-daemon (QMP on a Unix socket, NBD exports on another).
// Snapshots are image fleecing (DESIGN.md recipe), change tracking is
// qemu's persistent dirty bitmaps: cbt-K records the writes made between
// snapshot K and snapshot K+1 (cbt-0: since the disk was created).

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

const bitmapGranularity = 65536

type diskSnapshot struct {
	index    int // bitmap cbt-index started with this snapshot
	epoch    string
	node     string
	job      string
	exportID string
	export   string // NBD export name (the snapshot's moref value)
	overlay  string
	changeID string
	valid    bool // false once the daemon holding the fleecing overlay died
	cache    map[string][]extent
}

type harnessDisk struct {
	mu       sync.Mutex
	vmName   string
	key      int32
	capacity int64
	fileName string // datastore path of the backing, as the SOAP API shows it
	dir      string
	image    string
	nbdSock  string
	qmpSock  string

	cmd      *exec.Cmd
	qmp      *qmpClient
	exited   chan struct{}
	stopping bool
	restarts int

	// Change tracking epoch: a CBT reset starts a new epoch (new UUID in the
	// changeId) whose first bitmap is cbt-epochBase; cbt-active records now.
	epoch     string
	epochBase int
	active    int
	resets    int
	snaps     map[string]*diskSnapshot
	queryID   int

	// forgetArea: a CBT bug on purpose (harness `cbt-fault`): incremental
	// QueryChangedDiskAreas answers leave out the largest changed area.
	forgetArea bool
}

// maxSocketPath keeps Unix socket paths under the kernel's 108-byte limit.
const maxSocketPath = 100

func newHarnessDisk(vmName string, key int32, capacity int64, fileName, dir, shortDir string) *harnessDisk {
	sockDir := dir
	if len(filepath.Join(dir, "nbd.sock")) > maxSocketPath {
		// A deep state dir: the sockets go to a short per-run directory.
		sockDir = shortDir
	}
	return &harnessDisk{
		vmName:   vmName,
		key:      key,
		capacity: capacity,
		fileName: fileName,
		dir:      dir,
		image:    filepath.Join(dir, "disk.qcow2"),
		nbdSock:  filepath.Join(sockDir, "nbd.sock"),
		qmpSock:  filepath.Join(sockDir, "qmp.sock"),
		snaps:    map[string]*diskSnapshot{},
		epoch:    newEpoch(),
	}
}

// newEpoch returns the UUID part of changeIds, formatted like vSphere's
// ("52 de 1c ... 9f-5b 27 ..."), so it looks and parses like the real thing.
func newEpoch() string {
	h := strings.ReplaceAll(uuid.New().String(), "-", "")
	var b strings.Builder
	for i := 0; i < 32; i += 2 {
		if i == 16 {
			b.WriteString("-")
		} else if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func formatChangeID(epoch string, index int) string { return fmt.Sprintf("%s/%d", epoch, index) }

func parseChangeID(id string) (string, int, bool) {
	i := strings.LastIndex(id, "/")
	if i < 0 {
		return "", 0, false
	}
	var n int
	if _, err := fmt.Sscanf(id[i+1:], "%d", &n); err != nil || fmt.Sprint(n) != id[i+1:] {
		return "", 0, false
	}
	return id[:i], n, true
}

func bitmapName(i int) string { return fmt.Sprintf("cbt-%d", i) }

// qemuOpt escapes a value for qemu's key=value option syntax.
func qemuOpt(v string) string { return strings.ReplaceAll(v, ",", ",,") }

func (d *harnessDisk) liveURI() string { return nbdURI(d.nbdSock, "live") }
func nbdURI(socket, export string) string {
	return fmt.Sprintf("nbd+unix:///%s?socket=%s", export, socket)
}

// start launches the daemon and exports the disk as `live`. Callers hold d.mu.
func (d *harnessDisk) start() error {
	_ = os.Remove(d.qmpSock)
	_ = os.Remove(d.nbdSock)
	blockdev, _ := json.Marshal(map[string]interface{}{
		"driver": "qcow2", "node-name": "disk",
		"file": map[string]interface{}{"driver": "file", "filename": d.image},
	})
	logFile, err := os.OpenFile(filepath.Join(d.dir, "qsd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("qemu-storage-daemon",
		"--chardev", "socket,id=qmp,server=on,wait=off,path="+qemuOpt(d.qmpSock),
		"--monitor", "chardev=qmp",
		"--blockdev", string(blockdev))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If the harness itself is killed, its daemons must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	logFile.Close()
	exited := make(chan struct{})
	d.cmd, d.exited, d.stopping = cmd, exited, false
	go d.supervise(cmd, exited)

	qmp, err := dialQMP(d.qmpSock, 10*time.Second)
	if err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	d.qmp = qmp
	if _, err := qmp.Execute("nbd-server-start", map[string]interface{}{
		"addr": map[string]interface{}{"type": "unix", "data": map[string]interface{}{"path": d.nbdSock}},
	}); err != nil {
		return err
	}
	_, err = qmp.Execute("block-export-add", map[string]interface{}{
		"type": "nbd", "id": "live", "node-name": "disk", "name": "live", "writable": true,
	})
	return err
}

// supervise restarts a daemon that died without being asked to: that is an
// unclean stop, after which qemu reports the bitmaps in-use (a CBT reset).
func (d *harnessDisk) supervise(cmd *exec.Cmd, exited chan struct{}) {
	_ = cmd.Wait()
	close(exited)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping || d.cmd != cmd {
		return
	}
	log.Printf("disk %s/%d: qemu-storage-daemon %d died (%v); restarting", d.vmName, d.key, cmd.Process.Pid, cmd.ProcessState)
	if d.qmp != nil {
		d.qmp.Close()
		d.qmp = nil
	}
	for _, s := range d.snaps {
		s.valid = false
		_ = os.Remove(s.overlay)
	}
	if err := d.start(); err != nil {
		log.Printf("disk %s/%d: restart failed: %v", d.vmName, d.key, err)
		return
	}
	if err := d.checkBitmaps(); err != nil {
		log.Printf("disk %s/%d: %v", d.vmName, d.key, err)
	}
	d.restarts++
}

type blockNode struct {
	NodeName     string `json:"node-name"`
	DirtyBitmaps []struct {
		Name         string `json:"name"`
		Inconsistent bool   `json:"inconsistent"`
		Granularity  int64  `json:"granularity"`
	} `json:"dirty-bitmaps"`
}

// bitmaps lists the disk node's dirty bitmaps: name -> consistent.
func (d *harnessDisk) bitmaps() (map[string]bool, error) {
	raw, err := d.qmp.Execute("query-named-block-nodes", map[string]interface{}{"flat": true})
	if err != nil {
		return nil, err
	}
	var nodes []blockNode
	if err := json.Unmarshal(raw, &nodes); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, n := range nodes {
		if n.NodeName == "disk" {
			for _, b := range n.DirtyBitmaps {
				out[b.Name] = !b.Inconsistent
			}
		}
	}
	return out, nil
}

// checkBitmaps verifies that every bitmap of the current epoch survived; if
// not, change tracking is reset: stale bitmaps are removed and a new epoch
// starts, so every earlier changeId becomes invalid (as after a vSphere CBT
// reset). Callers hold d.mu.
func (d *harnessDisk) checkBitmaps() error {
	have, err := d.bitmaps()
	if err != nil {
		return err
	}
	intact := true
	for i := d.epochBase; i <= d.active; i++ {
		if !have[bitmapName(i)] {
			intact = false
		}
	}
	if intact {
		return nil
	}
	if err := d.removeCbtBitmapsLocked(have); err != nil {
		return err
	}
	if err := d.newCbtEpochLocked(); err != nil {
		return err
	}
	d.resets++
	log.Printf("disk %s/%d: CBT reset (bitmaps lost or in-use), new epoch starts at %s", d.vmName, d.key, bitmapName(d.active))
	return nil
}

// removeCbtBitmapsLocked drops every cbt-* bitmap of the disk node.
func (d *harnessDisk) removeCbtBitmapsLocked(have map[string]bool) error {
	for name := range have {
		if strings.HasPrefix(name, "cbt-") {
			if _, err := d.qmp.Execute("block-dirty-bitmap-remove", map[string]interface{}{"node": "disk", "name": name}); err != nil {
				return err
			}
		}
	}
	return nil
}

// newCbtEpochLocked starts a new change tracking epoch with a fresh bitmap:
// every earlier changeId of the disk yields the FileFault from then on.
func (d *harnessDisk) newCbtEpochLocked() error {
	next := d.active + 1
	if _, err := d.qmp.Execute("block-dirty-bitmap-add", map[string]interface{}{
		"node": "disk", "name": bitmapName(next), "persistent": true, "granularity": bitmapGranularity,
	}); err != nil {
		return err
	}
	d.epoch, d.epochBase, d.active = newEpoch(), next, next
	return nil
}

// Grow extends the disk to capacity bytes while its daemon runs (qemu's
// block_resize of the image, as a guest disk grown online), re-exports
// `live` at the new size and starts a new change tracking epoch: a changeId
// from before the resize is refused (FileFault), so no incremental against
// the old size can be trusted. Like vSphere, a disk with snapshots cannot
// be extended, and a disk cannot shrink.
func (d *harnessDisk) Grow(capacity int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.qmp == nil {
		return errors.New("daemon not running")
	}
	if len(d.snaps) > 0 {
		return httpErr(409, "disk %s/%d has snapshots (%d): remove them before extending the disk", d.vmName, d.key, len(d.snaps))
	}
	if capacity <= d.capacity {
		return httpErr(400, "disk %s/%d is %d bytes: it can only grow (asked for %d)", d.vmName, d.key, d.capacity, capacity)
	}
	if capacity%clusterSize != 0 {
		return httpErr(400, "the new size of disk %s/%d must be a multiple of 64 KiB", d.vmName, d.key)
	}
	// The export does not share the resize permission, and qemu's NBD export
	// keeps the size it had when it was added: take it down around the resize.
	if _, err := d.qmp.Execute("block-export-del", map[string]interface{}{"id": "live", "mode": "hard"}); err != nil {
		return err
	}
	_, resizeErr := d.qmp.Execute("block_resize", map[string]interface{}{"node-name": "disk", "size": capacity})
	for i := 0; ; i++ {
		_, err := d.qmp.Execute("block-export-add", map[string]interface{}{
			"type": "nbd", "id": "live", "node-name": "disk", "name": "live", "writable": true,
		})
		if err == nil {
			break
		}
		if i >= 200 { // the deleted export may take a moment to go away
			return fmt.Errorf("re-exporting disk %s/%d after the resize: %w", d.vmName, d.key, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resizeErr != nil {
		return fmt.Errorf("block_resize of disk %s/%d to %d bytes: %w", d.vmName, d.key, capacity, resizeErr)
	}
	have, err := d.bitmaps()
	if err != nil {
		return err
	}
	if err := d.removeCbtBitmapsLocked(have); err != nil {
		return err
	}
	if err := d.newCbtEpochLocked(); err != nil {
		return err
	}
	log.Printf("disk %s/%d: grown from %d to %d bytes; CBT epoch restarts at %s", d.vmName, d.key, d.capacity, capacity, bitmapName(d.active))
	d.capacity = capacity
	return nil
}

// Start boots the daemon for the first time.
func (d *harnessDisk) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.start(); err != nil {
		return err
	}
	return d.checkBitmaps()
}

// Stop tears down snapshots and quits the daemon cleanly, so qemu stores
// the persistent bitmaps in the image.
func (d *harnessDisk) Stop() {
	d.mu.Lock()
	d.stopping = true
	for ref := range d.snaps {
		d.removeSnapshotLocked(ref)
	}
	cmd, exited, qmp := d.cmd, d.exited, d.qmp
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	if qmp != nil {
		_, _ = qmp.Execute("quit", nil)
		qmp.Close()
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Crash kills the daemon with SIGKILL (an unclean stop) and waits until the
// supervisor has restarted it.
func (d *harnessDisk) Crash() error {
	d.mu.Lock()
	cmd, before := d.cmd, d.restarts
	d.mu.Unlock()
	if cmd == nil {
		return errors.New("daemon not running")
	}
	_ = cmd.Process.Kill()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		done := d.restarts > before
		d.mu.Unlock()
		if done {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("daemon was not restarted in time")
}

// CreateSnapshot freezes a point-in-time view of the disk (image fleecing)
// and starts a new bitmap; it returns the snapshot's changeId.
func (d *harnessDisk) CreateSnapshot(ref string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.qmp == nil {
		return "", errors.New("daemon not running")
	}
	k := d.active + 1
	s := &diskSnapshot{
		index: k, epoch: d.epoch,
		node:     fmt.Sprintf("snap-%d", k),
		job:      fmt.Sprintf("fleece-%d", k),
		exportID: fmt.Sprintf("export-snap-%d", k),
		export:   ref,
		overlay:  filepath.Join(d.dir, fmt.Sprintf("snap-%d.qcow2", k)),
		cache:    map[string][]extent{},
	}
	if _, err := runCmd(nil, "qemu-img", "create", "-q", "-f", "qcow2", s.overlay, fmt.Sprint(d.capacity)); err != nil {
		return "", err
	}
	if _, err := d.qmp.Execute("blockdev-add", map[string]interface{}{
		"driver": "qcow2", "node-name": s.node, "backing": "disk",
		"file": map[string]interface{}{"driver": "file", "filename": s.overlay},
	}); err != nil {
		return "", err
	}
	act := func(t string, data map[string]interface{}) map[string]interface{} {
		return map[string]interface{}{"type": t, "data": data}
	}
	if _, err := d.qmp.Execute("transaction", map[string]interface{}{"actions": []interface{}{
		act("block-dirty-bitmap-add", map[string]interface{}{"node": "disk", "name": bitmapName(k), "persistent": true, "granularity": bitmapGranularity}),
		act("block-dirty-bitmap-disable", map[string]interface{}{"node": "disk", "name": bitmapName(k - 1)}),
		act("blockdev-backup", map[string]interface{}{"job-id": s.job, "device": "disk", "target": s.node, "sync": "none"}),
	}}); err != nil {
		_, _ = d.qmp.Execute("blockdev-del", map[string]interface{}{"node-name": s.node})
		_ = os.Remove(s.overlay)
		return "", err
	}
	d.active = k
	if _, err := d.qmp.Execute("block-export-add", map[string]interface{}{
		"type": "nbd", "id": s.exportID, "node-name": s.node, "name": s.export, "writable": false,
	}); err != nil {
		return "", err
	}
	s.valid = true
	s.changeID = formatChangeID(d.epoch, k)
	d.snaps[ref] = s
	return s.changeID, nil
}

// RemoveSnapshot drops the fleecing overlay. The bitmaps stay: later
// queries with this snapshot's changeId still need them.
func (d *harnessDisk) RemoveSnapshot(ref string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removeSnapshotLocked(ref)
}

func (d *harnessDisk) removeSnapshotLocked(ref string) {
	s := d.snaps[ref]
	if s == nil {
		return
	}
	delete(d.snaps, ref)
	if s.valid && d.qmp != nil {
		_, _ = d.qmp.Execute("block-export-del", map[string]interface{}{"id": s.exportID, "mode": "hard"})
		_, _ = d.qmp.Execute("block-job-cancel", map[string]interface{}{"device": s.job, "force": true})
		// The job must be gone before its target node can be deleted.
		for i := 0; i < 200; i++ {
			if _, err := d.qmp.Execute("blockdev-del", map[string]interface{}{"node-name": s.node}); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	_ = os.Remove(s.overlay)
}

type snapshotExport struct {
	URI        string `json:"uri"`
	Socket     string `json:"socket"`
	ExportName string `json:"exportName"`
	SizeBytes  int64  `json:"sizeBytes"`
	ReadOnly   bool   `json:"readOnly"`
	ChangeID   string `json:"changeId,omitempty"`
}

func (d *harnessDisk) SnapshotExport(ref string) (*snapshotExport, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.snaps[ref]
	if s == nil {
		return nil, errNotFound
	}
	if !s.valid {
		return nil, errGone
	}
	return &snapshotExport{
		URI: nbdURI(d.nbdSock, s.export), Socket: d.nbdSock, ExportName: s.export,
		SizeBytes: d.capacity, ReadOnly: true, ChangeID: s.changeID,
	}, nil
}

var (
	errNotFound = errors.New("not found")
	errGone     = errors.New("snapshot data is gone: the disk's daemon was restarted after an unclean stop")
)

type diskStatus struct {
	Key            int32    `json:"key"`
	CapacityBytes  int64    `json:"capacityBytes"`
	FileName       string   `json:"fileName"`
	Image          string   `json:"image"`
	LiveURI        string   `json:"liveUri"`
	Socket         string   `json:"socket"`
	Pid            int      `json:"pid"`
	CbtEpoch       string   `json:"cbtEpoch"`
	ActiveBitmap   string   `json:"activeBitmap"`
	CbtResets      int      `json:"cbtResets"`
	CbtForgetsArea bool     `json:"cbtForgetsArea"`
	Snapshots      []string `json:"snapshots"`
}

func (d *harnessDisk) Status() diskStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := diskStatus{
		Key: d.key, CapacityBytes: d.capacity, FileName: d.fileName, Image: d.image,
		LiveURI: d.liveURI(), Socket: d.nbdSock, CbtEpoch: d.epoch,
		ActiveBitmap: bitmapName(d.active), CbtResets: d.resets, CbtForgetsArea: d.forgetArea, Snapshots: []string{},
	}
	if d.cmd != nil && d.cmd.Process != nil {
		st.Pid = d.cmd.Process.Pid
	}
	for ref := range d.snaps {
		st.Snapshots = append(st.Snapshots, ref)
	}
	return st
}
