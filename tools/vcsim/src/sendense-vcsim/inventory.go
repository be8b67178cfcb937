package main

// The harness's VMs: created through the simulator's own SOAP API (so they
// are ordinary simulator inventory), each disk backed by a harnessDisk. A
// registry hook follows snapshot creation and removal, which the simulator
// performs itself, to fleece the disks and stamp changeIds.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

type harnessVM struct {
	name  string
	ref   types.ManagedObjectReference
	uuid  string
	disks map[int32]*harnessDisk
}

func (vm *harnessVM) sortedKeys() []int32 {
	keys := make([]int32, 0, len(vm.disks))
	for k := range vm.disks {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

type harness struct {
	mu       sync.Mutex
	stateDir string
	window   int64
	vms      map[string]*harnessVM // by moref value
	hookRef  types.ManagedObjectReference
	runDir   string   // short socket directory, only for deep state dirs
	sdk      *url.URL // the simulator's SDK URL with the login, for harness calls
}

func newHarness(stateDir string, window int64) *harness {
	return &harness{
		stateDir: stateDir, window: window, vms: map[string]*harnessVM{},
		hookRef: types.ManagedObjectReference{Type: "SendenseHarnessHook", Value: "harness-hook"},
	}
}

func (h *harness) vm(ref string) *harnessVM {
	h.mu.Lock()
	defer h.mu.Unlock()
	if vm := h.vms[ref]; vm != nil {
		return vm
	}
	for _, vm := range h.vms {
		if vm.name == ref {
			return vm
		}
	}
	return nil
}

// createVMs adds the configured VMs to the simulator through its SOAP API.
func (h *harness) createVMs(ctx context.Context, sdk *url.URL, cfg *harnessConfig) error {
	h.sdk = sdk
	c, err := govmomi.NewClient(ctx, sdk, true)
	if err != nil {
		return err
	}
	defer c.Logout(ctx)
	finder := find.NewFinder(c.Client, false)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	// The VPX model has several clusters and hosts: take the first pool.
	pools, err := finder.ResourcePoolList(ctx, "*")
	if err != nil {
		return err
	}
	sort.Slice(pools, func(i, j int) bool { return pools[i].InventoryPath < pools[j].InventoryPath })
	pool := pools[0]
	ds, err := finder.DefaultDatastore(ctx)
	if err != nil {
		return err
	}
	for _, vc := range cfg.VMs {
		parts, err := folderPath(vc.Folder)
		if err != nil {
			return fmt.Errorf("vm %s: %w", vc.Name, err)
		}
		folder, err := ensureFolder(ctx, folders.VmFolder, parts)
		if err != nil {
			return fmt.Errorf("vm %s: folder %s: %w", vc.Name, vc.Folder, err)
		}
		if err := h.createVM(ctx, folder, pool, ds, vc); err != nil {
			return fmt.Errorf("vm %s: %w", vc.Name, err)
		}
	}
	return nil
}

func (h *harness) createVM(ctx context.Context, folder *object.Folder, pool *object.ResourcePool, ds *object.Datastore, vc vmConfig) error {
	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return err
	}
	devices = append(devices, scsi)
	controller, err := devices.FindDiskController("scsi")
	if err != nil {
		return err
	}
	for i, dc := range vc.Disks {
		disk := devices.CreateDisk(controller, ds.Reference(), ds.Path(fmt.Sprintf("%s/%s_%d.vmdk", vc.Name, vc.Name, i)))
		// Keys like vCenter's (2000 + n for SCSI disks) instead of random ones.
		disk.Key = int32(2000 + i)
		disk.CapacityInKB = dc.SizeMiB * 1024
		disk.CapacityInBytes = dc.SizeMiB * mib
		devices = append(devices, disk)
	}
	change, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return err
	}
	for _, c := range change {
		if _, ok := c.GetVirtualDeviceConfigSpec().Device.(*types.VirtualDisk); ok {
			c.GetVirtualDeviceConfigSpec().FileOperation = types.VirtualDeviceConfigSpecFileOperationCreate
		}
	}
	spec := types.VirtualMachineConfigSpec{
		Name: vc.Name, GuestId: vc.GuestID, NumCPUs: 1, MemoryMB: 512,
		Files:                 &types.VirtualMachineFileInfo{VmPathName: ds.Path(vc.Name)},
		DeviceChange:          change,
		ChangeTrackingEnabled: types.NewBool(vc.ChangeTrackingEnabled),
	}
	task, err := folder.CreateVM(ctx, spec, pool, nil)
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return err
	}
	ref := info.Result.(types.ManagedObjectReference)
	vmObj := object.NewVirtualMachine(folder.Client(), ref)
	if task, err = vmObj.PowerOn(ctx); err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return err
	}

	sim := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	hv := &harnessVM{name: vc.Name, ref: ref, uuid: sim.Config.InstanceUuid, disks: map[int32]*harnessDisk{}}
	simDisks := object.VirtualDeviceList(sim.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
	if len(simDisks) != len(vc.Disks) {
		return fmt.Errorf("simulator created %d disks, expected %d", len(simDisks), len(vc.Disks))
	}
	for _, dev := range simDisks {
		vd := dev.(*types.VirtualDisk)
		backing := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		i := -1
		for j := range vc.Disks {
			if strings.HasSuffix(backing.FileName, fmt.Sprintf("/%s_%d.vmdk", vc.Name, j)) {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("unexpected disk backing %s", backing.FileName)
		}
		dir := filepath.Join(h.stateDir, "vms", ref.Value, fmt.Sprintf("disk-%d", vd.Key))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		shortDir := ""
		if len(filepath.Join(dir, "nbd.sock")) > maxSocketPath {
			if shortDir, err = h.shortDir(fmt.Sprintf("%s-%d", ref.Value, vd.Key)); err != nil {
				return err
			}
		}
		d := newHarnessDisk(vc.Name, vd.Key, vc.Disks[i].SizeMiB*mib, backing.FileName, dir, shortDir)
		if err := createDiskImage(d.image, vc.Disks[i]); err != nil {
			return err
		}
		if err := d.Start(); err != nil {
			return err
		}
		hv.disks[vd.Key] = d
	}
	h.mu.Lock()
	h.vms[ref.Value] = hv
	h.mu.Unlock()
	return nil
}

// ensureFolder walks the child folders of root by name, creating the
// missing ones through the simulator's CreateFolder.
func ensureFolder(ctx context.Context, root *object.Folder, parts []string) (*object.Folder, error) {
	f := root
	for _, name := range parts {
		kids, err := f.Children(ctx)
		if err != nil {
			return nil, err
		}
		var next *object.Folder
		for _, k := range kids {
			kf, ok := k.(*object.Folder)
			if !ok {
				continue
			}
			var m mo.Folder
			if err := kf.Properties(ctx, kf.Reference(), []string{"name"}, &m); err != nil {
				return nil, err
			}
			if m.Name == name {
				next = kf
				break
			}
		}
		if next == nil {
			if next, err = f.CreateFolder(ctx, name); err != nil {
				return nil, err
			}
		}
		f = next
	}
	return f, nil
}

// moveToFolder moves a VM into the folder path below the datacenter's vm
// folder (made when missing) with MoveIntoFolder_Task, as an administrator would.
func (h *harness) moveToFolder(ctx context.Context, vm *harnessVM, path string) error {
	parts, err := folderPath(path)
	if err != nil {
		return err
	}
	c, err := govmomi.NewClient(ctx, h.sdk, true)
	if err != nil {
		return err
	}
	defer c.Logout(ctx)
	dc, err := find.NewFinder(c.Client, false).DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	folder, err := ensureFolder(ctx, folders.VmFolder, parts)
	if err != nil {
		return err
	}
	task, err := folder.MoveInto(ctx, []types.ManagedObjectReference{vm.ref})
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

// shortDir returns a directory under a per-run temporary directory, for
// sockets whose path under the state dir would be too long.
func (h *harness) shortDir(name string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.runDir == "" {
		d, err := os.MkdirTemp("", "vcsim-")
		if err != nil {
			return "", err
		}
		h.runDir = d
	}
	p := filepath.Join(h.runDir, name)
	return p, os.MkdirAll(p, 0o755)
}

func (h *harness) stop() {
	h.mu.Lock()
	vms := h.vms
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, vm := range vms {
		for _, d := range vm.disks {
			wg.Add(1)
			go func(d *harnessDisk) { defer wg.Done(); d.Stop() }(d)
		}
	}
	wg.Wait()
	if h.runDir != "" {
		_ = os.RemoveAll(h.runDir)
	}
}

// Reference makes the harness a simulator.RegisterObject.
func (h *harness) Reference() types.ManagedObjectReference { return h.hookRef }

// PutObject runs inside the simulator's CreateSnapshot_Task, right after
// the snapshot object (with its copy of the VM config) is registered.
func (h *harness) PutObject(item mo.Reference) {
	snap, ok := item.(*simulator.VirtualMachineSnapshot)
	if !ok {
		return
	}
	hv := h.vm(snap.Vm.Value)
	if hv == nil {
		return
	}
	cbt := snap.Config.ChangeTrackingEnabled != nil && *snap.Config.ChangeTrackingEnabled
	changeIDs := map[int32]string{}
	for key, d := range hv.disks {
		id, err := d.CreateSnapshot(snap.Self.Value)
		if err != nil {
			logf("snapshot %s of %s disk %d: %v", snap.Self.Value, hv.name, key, err)
			continue
		}
		if cbt {
			changeIDs[key] = id
		}
	}
	// The simulator's snapshot config shares device objects with the VM;
	// give the snapshot its own disks so its changeId stays fixed while the
	// VM's moves on.
	devs := make([]types.BaseVirtualDevice, len(snap.Config.Hardware.Device))
	for i, dev := range snap.Config.Hardware.Device {
		devs[i] = dev
		vd, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		id, ok := changeIDs[vd.Key]
		if !ok {
			continue
		}
		if b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
			b.ChangeId = id // the VM's current disk
			nb := *b
			nd := *vd
			nd.Backing = &nb
			devs[i] = &nd
		}
	}
	snap.Config.Hardware.Device = devs
}

func (h *harness) UpdateObject(mo.Reference, []types.PropertyChange) {}

// RemoveObject runs inside RemoveSnapshot_Task.
func (h *harness) RemoveObject(ref types.ManagedObjectReference) {
	if ref.Type != "VirtualMachineSnapshot" {
		return
	}
	h.mu.Lock()
	vms := make([]*harnessVM, 0, len(h.vms))
	for _, vm := range h.vms {
		vms = append(vms, vm)
	}
	h.mu.Unlock()
	for _, vm := range vms {
		for _, d := range vm.disks {
			d.RemoveSnapshot(ref.Value)
		}
	}
}
