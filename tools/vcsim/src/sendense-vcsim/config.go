package main

// The VM description file: which VMs the harness adds to the simulator
// inventory, their disks and the initial contents of each disk.

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

type harnessConfig struct {
	VMs []vmConfig `json:"vms"`
}

type vmConfig struct {
	Name string `json:"name"`
	// GuestID is the vSphere guest OS id (default otherLinux64Guest).
	GuestID string `json:"guestId"`
	// ChangeTrackingEnabled is config.changeTrackingEnabled at start
	// (default false, as on a freshly created VM).
	ChangeTrackingEnabled bool         `json:"changeTrackingEnabled"`
	Disks                 []diskConfig `json:"disks"`
	// Folder is the VM's inventory folder below the datacenter's vm folder,
	// e.g. "prod/web" (made when missing); empty: the vm folder itself.
	Folder string `json:"folder"`
}

// folderPath splits "prod/web" into its names; every name must be non-empty.
func folderPath(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, "\x00") {
			return nil, fmt.Errorf("folder %q: empty or invalid folder name", path)
		}
	}
	return parts, nil
}

type diskConfig struct {
	SizeMiB int64         `json:"sizeMiB"`
	Content contentConfig `json:"content"`
}

type contentConfig struct {
	// Type is "empty", "random" or "filesystem".
	Type string `json:"type"`
	// Percent of the disk filled with random data ("random"; default 50).
	Percent float64 `json:"percent"`
	// Seed makes "random" content reproducible (default 1).
	Seed int64 `json:"seed"`
	// Filesystem is "ext4" or "xfs" ("filesystem").
	Filesystem string `json:"filesystem"`
	// PartitionTable is "gpt" or "mbr" ("filesystem"; default gpt).
	PartitionTable string `json:"partitionTable"`
	// Files maps absolute guest paths to their text content.
	Files map[string]string `json:"files"`
	// RandomFiles maps absolute guest paths to a size in bytes of random data.
	RandomFiles map[string]int64 `json:"randomFiles"`
}

func loadConfig(path string) (*harnessConfig, error) {
	cfg := &harnessConfig{}
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, cfg.validate()
}

func (c *harnessConfig) validate() error {
	seen := map[string]bool{}
	for i := range c.VMs {
		vm := &c.VMs[i]
		if vm.Name == "" || seen[vm.Name] {
			return fmt.Errorf("vm %d: name missing or duplicate", i)
		}
		seen[vm.Name] = true
		if vm.GuestID == "" {
			vm.GuestID = "otherLinux64Guest"
		}
		if _, err := folderPath(vm.Folder); err != nil {
			return fmt.Errorf("vm %s: %w", vm.Name, err)
		}
		for j := range vm.Disks {
			if err := vm.Disks[j].validate(fmt.Sprintf("vm %s disk %d", vm.Name, j)); err != nil {
				return err
			}
		}
	}
	return nil
}

// validate checks one disk's config and fills in defaults (also for a disk
// added at run time, harness `POST /vms/{vm}/disks`).
func (d *diskConfig) validate(where string) error {
	if d.SizeMiB <= 0 {
		return fmt.Errorf("%s: sizeMiB must be positive", where)
	}
	switch d.Content.Type {
	case "", "empty":
		d.Content.Type = "empty"
	case "random":
		if d.Content.Percent == 0 {
			d.Content.Percent = 50
		}
		if d.Content.Percent < 0 || d.Content.Percent > 100 {
			return fmt.Errorf("%s: percent must be 0..100", where)
		}
	case "filesystem":
		if d.Content.PartitionTable == "" {
			d.Content.PartitionTable = "gpt"
		}
		if d.Content.PartitionTable != "gpt" && d.Content.PartitionTable != "mbr" {
			return fmt.Errorf("%s: partitionTable must be gpt or mbr", where)
		}
		switch d.Content.Filesystem {
		case "ext4":
		case "xfs":
			// mkfs.xfs 6.x refuses filesystems under 300 MB.
			if d.SizeMiB < 320 {
				return fmt.Errorf("%s: xfs needs sizeMiB >= 320", where)
			}
		default:
			return fmt.Errorf("%s: filesystem must be ext4 or xfs", where)
		}
		for p := range d.Content.Files {
			if err := checkStagedGuestPath(p); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		for p := range d.Content.RandomFiles {
			if err := checkGuestPath(p); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
	default:
		return fmt.Errorf("%s: content type must be empty, random or filesystem", where)
	}
	if d.Content.Seed == 0 {
		d.Content.Seed = 1
	}
	return nil
}

// checkGuestPath accepts absolute, normalised paths of plain names only, so
// a path can never climb out of the staging directory or smuggle debugfs
// syntax (spaces, quotes, newlines) into a command script.
// checkStagedGuestPath is for files of the initial content: they are staged
// as real files and copied by mkfs (no debugfs script), so names may hold
// spaces and any UTF-8 (the restore tests need them); not control characters.
func checkStagedGuestPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || !utf8.ValidString(p) {
		return fmt.Errorf("guest path %q must be absolute, UTF-8 and name a file", p)
	}
	for _, part := range strings.Split(p[1:], "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("guest path %q is not normalised", p)
		}
		for _, r := range part {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("guest path %q: control characters are not allowed in names", p)
			}
		}
	}
	return nil
}

func checkGuestPath(p string) error {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("guest path %q must be absolute and name a file", p)
	}
	for _, part := range strings.Split(p[1:], "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("guest path %q is not normalised", p)
		}
		for _, r := range part {
			ok := r == '.' || r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			if !ok {
				return fmt.Errorf("guest path %q: only [A-Za-z0-9._-] are allowed in names", p)
			}
		}
	}
	return nil
}
