package main

// The harness HTTP JSON API under /harness/: where snapshot disk data is
// readable over NBD, and guest actions on the live disks. See README.md.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func httpErr(status int, format string, args ...interface{}) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

type vmStatus struct {
	Name         string       `json:"name"`
	Moref        string       `json:"moref"`
	InstanceUUID string       `json:"instanceUuid"`
	Disks        []diskStatus `json:"disks"`
}

func (vm *harnessVM) status() vmStatus {
	st := vmStatus{Name: vm.name, Moref: vm.ref.Value, InstanceUUID: vm.uuid, Disks: []diskStatus{}}
	for _, k := range vm.sortedKeys() {
		st.Disks = append(st.Disks, vm.disks[k].Status())
	}
	return st
}

func (h *harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res, err := h.route(r)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.status
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(res)
}

func decodeBody(r *http.Request, v interface{}) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return httpErr(http.StatusBadRequest, "request body: %v", err)
	}
	return nil
}

func (h *harness) route(r *http.Request) (interface{}, error) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/harness"), "/"), "/")
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case len(parts) == 1 && parts[0] == "health" && get:
		return map[string]bool{"ok": true}, nil
	case len(parts) == 1 && parts[0] == "vms" && get:
		h.mu.Lock()
		vms := make([]*harnessVM, 0, len(h.vms))
		for _, vm := range h.vms {
			vms = append(vms, vm)
		}
		h.mu.Unlock()
		out := []vmStatus{}
		for _, vm := range vms {
			out = append(out, vm.status())
		}
		return out, nil
	}
	if len(parts) < 2 || parts[0] != "vms" {
		return nil, httpErr(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}
	vm := h.vm(parts[1])
	if vm == nil {
		return nil, httpErr(http.StatusNotFound, "no harness VM %q", parts[1])
	}
	rest := parts[2:]
	disk := func(key string) (*harnessDisk, error) {
		k, err := strconv.ParseInt(key, 10, 32)
		if err != nil || vm.disks[int32(k)] == nil {
			return nil, httpErr(http.StatusNotFound, "VM %s has no disk with device key %s", vm.name, key)
		}
		return vm.disks[int32(k)], nil
	}
	switch {
	case len(rest) == 0 && get:
		return vm.status(), nil
	// POST /harness/vms/{vm}/folder {"path": "prod/web"}
	case len(rest) == 1 && rest[0] == "folder" && post:
		var req struct {
			Path *string `json:"path"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if req.Path == nil {
			return nil, httpErr(http.StatusBadRequest, "path is required")
		}
		if _, err := folderPath(*req.Path); err != nil {
			return nil, httpErr(http.StatusBadRequest, "%v", err)
		}
		if err := h.moveToFolder(r.Context(), vm, *req.Path); err != nil {
			return nil, err
		}
		return map[string]string{"moref": vm.ref.Value, "folder": *req.Path}, nil
	// GET /harness/vms/{vm}/snapshots/{snap}/disks/{key}/nbd
	case len(rest) == 5 && rest[0] == "snapshots" && rest[2] == "disks" && rest[4] == "nbd" && get:
		d, err := disk(rest[3])
		if err != nil {
			return nil, err
		}
		exp, err := d.SnapshotExport(rest[1])
		switch {
		case errors.Is(err, errNotFound):
			return nil, httpErr(http.StatusNotFound, "VM %s has no snapshot %s", vm.name, rest[1])
		case errors.Is(err, errGone):
			return nil, httpErr(http.StatusGone, "%v", err)
		}
		return exp, err
	case len(rest) == 2 && rest[0] == "disks" && get:
		d, err := disk(rest[1])
		if err != nil {
			return nil, err
		}
		return d.Status(), nil
	// POST /harness/vms/{vm}/disks {"sizeMiB": 16, "content": {...}}: hot-add a disk
	case len(rest) == 1 && rest[0] == "disks" && post:
		var req diskConfig
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		d, err := h.addDisk(r.Context(), vm, req)
		if err != nil {
			return nil, err
		}
		return d.Status(), nil
	// POST /harness/vms/{vm}/disks/{key}/resize {"sizeMiB": 64}: extend a disk
	case len(rest) == 3 && rest[0] == "disks" && rest[2] == "resize" && post:
		d, err := disk(rest[1])
		if err != nil {
			return nil, err
		}
		var req struct {
			SizeMiB int64 `json:"sizeMiB"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		if err := h.resizeDisk(r.Context(), vm, d, req.SizeMiB); err != nil {
			return nil, err
		}
		return d.Status(), nil
	case len(rest) == 3 && rest[0] == "disks":
		d, err := disk(rest[1])
		if err != nil {
			return nil, err
		}
		return h.diskAction(d, rest[2], r, get, post)
	}
	return nil, httpErr(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
}

func (h *harness) diskAction(d *harnessDisk, action string, r *http.Request, get, post bool) (interface{}, error) {
	bad := func(err error) error {
		if err == nil {
			return nil
		}
		var ae *apiError
		if errors.As(err, &ae) {
			return err
		}
		return httpErr(http.StatusBadRequest, "%v", err)
	}
	switch {
	case action == "write" && post:
		var req struct {
			Offset     int64  `json:"offset"`
			DataBase64 string `json:"dataBase64"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		data, err := base64.StdEncoding.DecodeString(req.DataBase64)
		if err != nil {
			return nil, httpErr(http.StatusBadRequest, "dataBase64: %v", err)
		}
		return map[string]int{"written": len(data)}, bad(d.GuestWrite(req.Offset, data))
	case action == "zero" && post:
		var req struct {
			Offset int64 `json:"offset"`
			Length int64 `json:"length"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return map[string]int64{"zeroed": req.Length}, bad(d.GuestZero(req.Offset, req.Length))
	case action == "read" && get:
		off, err1 := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
		n, err2 := strconv.ParseInt(r.URL.Query().Get("length"), 10, 64)
		if err1 != nil || err2 != nil || n > 64<<20 {
			return nil, httpErr(http.StatusBadRequest, "offset and length (at most 64 MiB) are required")
		}
		data, err := d.GuestRead(off, n)
		return map[string]string{"dataBase64": base64.StdEncoding.EncodeToString(data)}, bad(err)
	case action == "fill" && post:
		var req struct {
			Percent float64 `json:"percent"`
			Seed    int64   `json:"seed"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		areas, err := d.GuestFill(req.Percent, req.Seed)
		return map[string]interface{}{"areas": areas}, bad(err)
	case action == "files" && post:
		var req struct {
			Path          string  `json:"path"`
			Content       *string `json:"content"`
			ContentBase64 *string `json:"contentBase64"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		var data []byte
		switch {
		case req.Content != nil:
			data = []byte(*req.Content)
		case req.ContentBase64 != nil:
			var err error
			if data, err = base64.StdEncoding.DecodeString(*req.ContentBase64); err != nil {
				return nil, httpErr(http.StatusBadRequest, "contentBase64: %v", err)
			}
		}
		blocks, err := d.GuestWriteFile(req.Path, data)
		return map[string]int{"blocksWritten": blocks}, bad(err)
	case action == "cbt-fault" && post:
		var req struct {
			ForgetOneArea bool `json:"forgetOneArea"`
		}
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		d.SetCbtFault(req.ForgetOneArea)
		return d.Status(), nil
	case action == "fsck" && get:
		res, err := d.GuestFsck()
		return res, bad(err)
	case action == "crash" && post:
		if err := d.Crash(); err != nil {
			return nil, err
		}
		return d.Status(), nil
	}
	return nil, httpErr(http.StatusNotFound, "no such disk action: %s %s", r.Method, action)
}
