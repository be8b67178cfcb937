package main

// The /sdk endpoint: every SOAP call goes to the simulator unchanged,
// except VirtualMachine.QueryChangedDiskAreas, which the simulator does not
// implement and the harness answers from qemu's dirty bitmaps.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

type sdkHandler struct {
	h     *harness
	inner http.Handler
}

func (s *sdkHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.inner.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !bytes.Contains(body, []byte("QueryChangedDiskAreas")) {
		s.inner.ServeHTTP(w, r)
		return
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil || method.Name != "QueryChangedDiskAreas" {
		s.inner.ServeHTTP(w, r)
		return
	}
	// Authentication is the simulator's: probe the session with a call that
	// needs one, and relay its NotAuthenticated fault verbatim if it fails.
	probe := httptest.NewRequest(http.MethodPost, r.URL.Path, bytes.NewReader([]byte(currentTimeRequest)))
	probe.Header = r.Header.Clone()
	probe.RemoteAddr = r.RemoteAddr
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, probe)
	if rec.Code != http.StatusOK {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	req := method.Body.(*types.QueryChangedDiskAreas)
	res, msg, fault := s.h.queryChangedDiskAreas(req)
	if fault != nil {
		writeFault(w, msg, fault)
		return
	}
	writeResponse(w, &methods.QueryChangedDiskAreasBody{Res: res})
}

const currentTimeRequest = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
	`<CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime>` +
	`</soapenv:Body></soapenv:Envelope>`

func (h *harness) queryChangedDiskAreas(req *types.QueryChangedDiskAreas) (*types.QueryChangedDiskAreasResponse, string, types.BaseMethodFault) {
	notFound := func(ref types.ManagedObjectReference) (*types.QueryChangedDiskAreasResponse, string, types.BaseMethodFault) {
		return nil, fmt.Sprintf("managed object not found: %s", ref), &types.ManagedObjectNotFound{Obj: ref}
	}
	invalid := func(prop string) (*types.QueryChangedDiskAreasResponse, string, types.BaseMethodFault) {
		return nil, "A specified parameter was not correct: " + prop, &types.InvalidArgument{InvalidProperty: prop}
	}
	if _, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine); !ok {
		return notFound(req.This)
	}
	if req.Snapshot == nil {
		return invalid("snapshot")
	}
	snap, ok := simulator.Map.Get(*req.Snapshot).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return notFound(*req.Snapshot)
	}
	if snap.Vm != req.This {
		return invalid("snapshot")
	}
	var disk *types.VirtualDisk
	for _, dev := range snap.Config.Hardware.Device {
		if vd, ok := dev.(*types.VirtualDisk); ok && vd.Key == req.DeviceKey {
			disk = vd
		}
	}
	if disk == nil {
		return invalid("deviceKey")
	}
	fileName := ""
	if b, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
		fileName = b.GetVirtualDeviceFileBackingInfo().FileName
	}
	// vCenter answers every "no usable change tracking" case with this.
	fileFault := func() (*types.QueryChangedDiskAreasResponse, string, types.BaseMethodFault) {
		return nil, "Error caused by file " + fileName, &types.FileFault{File: fileName}
	}
	if snap.Config.ChangeTrackingEnabled == nil || !*snap.Config.ChangeTrackingEnabled {
		return fileFault()
	}
	hv := h.vm(req.This.Value)
	if hv == nil || hv.disks[req.DeviceKey] == nil {
		return fileFault()
	}
	d := hv.disks[req.DeviceKey]
	if req.StartOffset < 0 || req.StartOffset >= d.capacity {
		return invalid("startOffset")
	}
	areas, err := d.ChangedAreas(req.Snapshot.Value, req.ChangeId)
	if err != nil {
		if _, ok := err.(*errChangeID); ok {
			logf("QueryChangedDiskAreas %s disk %d changeId %q: %v", hv.name, req.DeviceKey, req.ChangeId, err)
			return fileFault()
		}
		return nil, err.Error(), &types.SystemError{Reason: err.Error()}
	}
	length := d.capacity - req.StartOffset
	if length > h.window {
		length = h.window
	}
	info := types.DiskChangeInfo{StartOffset: req.StartOffset, Length: length}
	for _, a := range window(areas, req.StartOffset, length) {
		info.ChangedArea = append(info.ChangedArea, types.DiskChangeExtent{Start: a.Start, Length: a.Length})
	}
	return &types.QueryChangedDiskAreasResponse{Returnval: info}, "", nil
}

// The envelope and fault layout below mirror what the simulator writes.
type envelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type faultDetail struct{ Fault types.AnyType }

func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:vim25"},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

type responseBody struct {
	Res interface{}
}

func (r *responseBody) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	name := reflect.TypeOf(r.Res).Elem().Name()
	if err := e.EncodeElement(r.Res, xml.StartElement{Name: xml.Name{Space: "urn:vim25", Local: name}}); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

func writeEnvelope(w http.ResponseWriter, status int, body interface{}) {
	var out bytes.Buffer
	out.WriteString(xml.Header)
	err := xml.NewEncoder(&out).Encode(&envelope{
		Enc: "http://schemas.xmlsoap.org/soap/encoding/", Env: "http://schemas.xmlsoap.org/soap/envelope/",
		XSD: "http://www.w3.org/2001/XMLSchema", XSI: "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(out.Bytes())
}

func writeResponse(w http.ResponseWriter, body *methods.QueryChangedDiskAreasBody) {
	writeEnvelope(w, http.StatusOK, &responseBody{Res: body.Res})
}

func writeFault(w http.ResponseWriter, msg string, fault types.BaseMethodFault) {
	f := &soapFault{Code: "ServerFaultCode", String: msg}
	f.Detail.Fault = &faultDetail{Fault: fault}
	writeEnvelope(w, http.StatusInternalServerError, struct{ Fault *soapFault }{f})
}
