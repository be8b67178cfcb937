package main

// Disk changes an administrator makes between backups: extend a disk and
// hot-add a disk. Both change qemu (the image and its daemon) and the
// simulator's inventory (the VirtualDisk device, through the simulator's
// own ReconfigVM_Task), so what the SOAP API shows and what NBD serves agree.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

func (h *harness) sdkVM(ctx context.Context, vm *harnessVM) (*govmomi.Client, *object.VirtualMachine, error) {
	c, err := govmomi.NewClient(ctx, h.sdk, true)
	if err != nil {
		return nil, nil, err
	}
	return c, object.NewVirtualMachine(c.Client, vm.ref), nil
}

// resizeDisk grows disk key of vm to sizeMiB: qemu first (it refuses a
// disk with snapshots or a shrink), then the VirtualDisk's capacityInKB and
// capacityInBytes by a ReconfigVM_Task edit (no file operation), as vSphere
// clients extend a disk. The backing's changeId is cleared: the next
// snapshot stamps one of the new CBT epoch.
func (h *harness) resizeDisk(ctx context.Context, vm *harnessVM, d *harnessDisk, sizeMiB int64) error {
	if sizeMiB <= 0 {
		return httpErr(http.StatusBadRequest, "sizeMiB must be positive")
	}
	c, vmObj, err := h.sdkVM(ctx, vm)
	if err != nil {
		return err
	}
	defer c.Logout(ctx)
	devs, err := vmObj.Device(ctx)
	if err != nil {
		return err
	}
	vd, ok := devs.FindByKey(d.key).(*types.VirtualDisk)
	if !ok {
		return httpErr(http.StatusNotFound, "VM %s has no virtual disk with key %d in the simulator", vm.name, d.key)
	}
	if err := d.Grow(sizeMiB * mib); err != nil {
		return err
	}
	vd.CapacityInKB = sizeMiB * 1024
	vd.CapacityInBytes = sizeMiB * mib
	if b, ok := vd.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
		b.ChangeId = ""
	}
	task, err := vmObj.Reconfigure(ctx, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: vd},
	}})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("ReconfigVM_Task (extend disk %d of %s to %d MiB) failed after qemu grew the image: %w", d.key, vm.name, sizeMiB, err)
	}
	return nil
}

// addDisk hot-adds a disk to vm: a VirtualDisk on the VM's SCSI controller
// (key 2000 + n, backing `<vm>/<vm>_<n>.vmdk` on the datastore of its
// other disks) by a ReconfigVM_Task add with file operation create, and a
// QCOW2 image with the given content, its daemon and bitmap cbt-0, made as
// at start (createDiskImage). With CBT on for the VM, the new disk's
// snapshots carry changeIds like the others.
func (h *harness) addDisk(ctx context.Context, vm *harnessVM, cfg diskConfig) (*harnessDisk, error) {
	if err := cfg.validate("new disk"); err != nil {
		return nil, httpErr(http.StatusBadRequest, "%v", err)
	}
	c, vmObj, err := h.sdkVM(ctx, vm)
	if err != nil {
		return nil, err
	}
	defer c.Logout(ctx)
	devs, err := vmObj.Device(ctx)
	if err != nil {
		return nil, err
	}
	disks := devs.SelectByType((*types.VirtualDisk)(nil))
	if len(disks) == 0 {
		return nil, httpErr(http.StatusBadRequest, "VM %s has no disk to take the datastore from", vm.name)
	}
	first := disks[0].(*types.VirtualDisk).Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	if first.Datastore == nil {
		return nil, fmt.Errorf("disk backing %s has no datastore", first.FileName)
	}
	var dsPath object.DatastorePath
	if !dsPath.FromString(first.FileName) {
		return nil, fmt.Errorf("cannot parse datastore path %q", first.FileName)
	}
	controller, err := devs.FindDiskController("scsi")
	if err != nil {
		return nil, err
	}
	taken := func(n int) bool {
		for _, dev := range disks {
			b := dev.(*types.VirtualDisk).Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if strings.HasSuffix(b.FileName, fmt.Sprintf("/%s_%d.vmdk", vm.name, n)) || dev.GetVirtualDevice().Key == int32(2000+n) {
				return true
			}
		}
		return false
	}
	n := len(disks)
	for taken(n) {
		n++
	}
	fileName := (&object.DatastorePath{Datastore: dsPath.Datastore, Path: fmt.Sprintf("%s/%s_%d.vmdk", vm.name, vm.name, n)}).String()
	vd := devs.CreateDisk(controller, *first.Datastore, fileName)
	vd.Key = int32(2000 + n)
	vd.CapacityInKB = cfg.SizeMiB * 1024
	vd.CapacityInBytes = cfg.SizeMiB * mib

	dir := filepath.Join(h.stateDir, "vms", vm.ref.Value, fmt.Sprintf("disk-%d", vd.Key))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	shortDir := ""
	if len(filepath.Join(dir, "nbd.sock")) > maxSocketPath {
		if shortDir, err = h.shortDir(fmt.Sprintf("%s-%d", vm.ref.Value, vd.Key)); err != nil {
			return nil, err
		}
	}
	d := newHarnessDisk(vm.name, vd.Key, cfg.SizeMiB*mib, fileName, dir, shortDir)
	if err := createDiskImage(d.image, cfg); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := d.Start(); err != nil {
		d.Stop()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := vmObj.AddDevice(ctx, vd); err != nil {
		d.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("ReconfigVM_Task (add disk %s to %s): %w", fileName, vm.name, err)
	}
	// Check what the simulator made of it: the harness disk must carry its key.
	after, err := vmObj.Device(ctx)
	if err != nil {
		return nil, err
	}
	if got, ok := after.FindByKey(vd.Key).(*types.VirtualDisk); !ok || got.Backing.(*types.VirtualDiskFlatVer2BackingInfo).FileName != fileName {
		return nil, fmt.Errorf("the simulator did not add disk %s to %s with key %d", fileName, vm.name, vd.Key)
	}
	// Copy on write: snapshot hooks and requests iterate the old map meanwhile.
	h.mu.Lock()
	next := make(map[int32]*harnessDisk, len(vm.disks)+1)
	for k, v := range vm.disks {
		next[k] = v
	}
	next[vd.Key] = d
	vm.disks = next
	h.mu.Unlock()
	return d, nil
}
