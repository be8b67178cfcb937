package main

// Changed-block queries: qemu's dirty bitmaps (or, for changeId "*", the
// allocation map) read back over the NBD block-status meta contexts.

import (
	"encoding/json"
	"fmt"
	"time"
)

type extent struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
}

// errChangeID is what vCenter reports as a FileFault on the disk: an
// unknown, malformed or reset changeId, or change tracking unavailable.
type errChangeID struct{ reason string }

func (e *errChangeID) Error() string { return e.reason }

type nbdMapEntry struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	Type   int64 `json:"type"`
}

// nbdMap runs `nbdinfo --map` (libnbd) on an export: a maintained NBD
// client reading qemu's block status, rather than a protocol parser here.
func nbdMap(uri, context string, keep func(t int64) bool) ([]extent, error) {
	args := []string{"--json", "--map"}
	if context != "" {
		args[1] = "--map=" + context
	}
	out, err := runCmd(nil, "nbdinfo", append(args, uri)...)
	if err != nil {
		return nil, err
	}
	var entries []nbdMapEntry
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, fmt.Errorf("nbdinfo --map output: %w", err)
	}
	var res []extent
	for _, e := range entries {
		if !keep(e.Type) || e.Length == 0 {
			continue
		}
		if n := len(res); n > 0 && res[n-1].Start+res[n-1].Length == e.Offset {
			res[n-1].Length += e.Length
			continue
		}
		res = append(res, extent{Start: e.Offset, Length: e.Length})
	}
	return res, nil
}

// ChangedAreas returns the areas of the disk that changed between the
// changeId's snapshot and snapshot ref ("*": all allocated areas).
func (d *harnessDisk) ChangedAreas(ref, changeID string) ([]extent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.snaps[ref]
	if s == nil {
		return nil, &errChangeID{"the snapshot has no change tracking data for this disk"}
	}
	if !s.valid || s.epoch != d.epoch {
		return nil, &errChangeID{"change tracking was reset after the snapshot was taken"}
	}
	if areas, ok := s.cache[changeID]; ok {
		return d.faulty(changeID, areas), nil
	}
	var areas []extent
	var err error
	if changeID == "*" {
		// base:allocation types: bit 0 = hole, bit 1 = zero.
		areas, err = nbdMap(nbdURI(d.nbdSock, s.export), "", func(t int64) bool { return t&1 == 0 })
	} else {
		areas, err = d.bitmapAreas(s, changeID)
	}
	if err != nil {
		return nil, err
	}
	s.cache[changeID] = areas
	return d.faulty(changeID, areas), nil
}

// faulty applies the harness's CBT fault (`cbt-fault`): with forgetArea on,
// an incremental answer leaves out its largest area, as vSphere's CBT bugs
// did (the allocated-areas answer "*" stays right). Called with d.mu held.
func (d *harnessDisk) faulty(changeID string, areas []extent) []extent {
	if !d.forgetArea || changeID == "*" || len(areas) == 0 {
		return areas
	}
	largest := 0
	for i, a := range areas {
		if a.Length > areas[largest].Length {
			largest = i
		}
	}
	out := make([]extent, 0, len(areas)-1)
	out = append(out, areas[:largest]...)
	return append(out, areas[largest+1:]...)
}

// SetCbtFault turns the deliberate CBT fault on or off.
func (d *harnessDisk) SetCbtFault(forget bool) {
	d.mu.Lock()
	d.forgetArea = forget
	d.mu.Unlock()
	logf("disk %s/%d: CBT fault forget-one-area %v", d.vmName, d.key, forget)
}

// bitmapAreas merges cbt-n .. cbt-(m-1) into a temporary bitmap and reads
// it through a temporary read-only export (DESIGN.md recipe, step 3).
func (d *harnessDisk) bitmapAreas(s *diskSnapshot, changeID string) ([]extent, error) {
	epoch, n, ok := parseChangeID(changeID)
	if !ok || epoch != d.epoch || n < d.epochBase || n > s.index {
		return nil, &errChangeID{fmt.Sprintf("changeId %q is not valid for this disk", changeID)}
	}
	if n == s.index {
		return []extent{}, nil
	}
	have, err := d.bitmaps()
	if err != nil {
		return nil, err
	}
	var sources []string
	for i := n; i < s.index; i++ {
		if !have[bitmapName(i)] {
			return nil, &errChangeID{fmt.Sprintf("bitmap %s is missing or in-use: change tracking was reset", bitmapName(i))}
		}
		sources = append(sources, bitmapName(i))
	}
	d.queryID++
	tmp := fmt.Sprintf("query-%d", d.queryID)
	if _, err := d.qmp.Execute("block-dirty-bitmap-add", map[string]interface{}{
		"node": "disk", "name": tmp, "persistent": false, "disabled": true, "granularity": bitmapGranularity,
	}); err != nil {
		return nil, err
	}
	defer d.removeBitmap(tmp)
	if _, err := d.qmp.Execute("block-dirty-bitmap-merge", map[string]interface{}{
		"node": "disk", "target": tmp, "bitmaps": sources,
	}); err != nil {
		return nil, err
	}
	if _, err := d.qmp.Execute("block-export-add", map[string]interface{}{
		"type": "nbd", "id": tmp, "node-name": "disk", "name": tmp, "writable": false, "bitmaps": []string{tmp},
	}); err != nil {
		return nil, err
	}
	areas, err := nbdMap(nbdURI(d.nbdSock, tmp), "qemu:dirty-bitmap:"+tmp, func(t int64) bool { return t&1 == 1 })
	_, _ = d.qmp.Execute("block-export-del", map[string]interface{}{"id": tmp, "mode": "hard"})
	if areas == nil && err == nil {
		areas = []extent{}
	}
	return areas, err
}

// removeBitmap retries while the export that used it is still going away.
func (d *harnessDisk) removeBitmap(name string) {
	var err error
	for i := 0; i < 100; i++ {
		if _, err = d.qmp.Execute("block-dirty-bitmap-remove", map[string]interface{}{"node": "disk", "name": name}); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	logf("disk %s/%d: could not remove temporary bitmap %s: %v", d.vmName, d.key, name, err)
}

// window clips the areas to [start, start+length), as the paged vSphere
// answer does (DiskChangeInfo.startOffset/length).
func window(areas []extent, start, length int64) []extent {
	end := start + length
	out := []extent{}
	for _, a := range areas {
		s, e := a.Start, a.Start+a.Length
		if e <= start || s >= end {
			continue
		}
		if s < start {
			s = start
		}
		if e > end {
			e = end
		}
		out = append(out, extent{Start: s, Length: e - s})
	}
	return out
}
