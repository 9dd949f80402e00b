// Package greeter speaks grpclb.test.Greeter (test/protos/greeter.proto) without generated code:
// messages are encoded with protowire and carried by a pass-through codec, so the interop peers
// build from Go modules alone (no protoc).
package greeter

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	Service      = "grpclb.test.Greeter"
	SayHelloPath = "/grpclb.test.Greeter/SayHello"
)

// Reply is grpclb.test.HelloReply.
type Reply struct {
	Message string
	Backend string
	Address string
	Labels  map[string]string
}

// RawCodec passes already-encoded protobuf bytes through. It is named "proto" so the wire
// content-type stays application/grpc+proto, as any peer expects.
type RawCodec struct{}

func (RawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("RawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

func (RawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("RawCodec: cannot unmarshal into %T", v)
	}
	*b = append([]byte(nil), data...)
	return nil
}

func (RawCodec) Name() string { return "proto" }

// EncodeRequest encodes HelloRequest{name}.
func EncodeRequest(name string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(b, name)
}

// DecodeRequest returns HelloRequest.name.
func DecodeRequest(b []byte) (string, error) {
	name := ""
	err := eachField(b, func(num protowire.Number, value []byte) error {
		if num == 1 {
			name = string(value)
		}
		return nil
	})
	return name, err
}

// EncodeReply encodes a HelloReply.
func EncodeReply(r Reply) []byte {
	var b []byte
	for _, f := range []struct {
		num   protowire.Number
		value string
	}{{1, r.Message}, {2, r.Backend}, {3, r.Address}} {
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		b = protowire.AppendString(b, f.value)
	}
	keys := make([]string, 0, len(r.Labels))
	for k := range r.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, k)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, r.Labels[k])
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	return b
}

// DecodeReply decodes a HelloReply.
func DecodeReply(b []byte) (Reply, error) {
	r := Reply{Labels: map[string]string{}}
	err := eachField(b, func(num protowire.Number, value []byte) error {
		switch num {
		case 1:
			r.Message = string(value)
		case 2:
			r.Backend = string(value)
		case 3:
			r.Address = string(value)
		case 4:
			var k, v string
			if err := eachField(value, func(n protowire.Number, x []byte) error {
				if n == 1 {
					k = string(x)
				} else if n == 2 {
					v = string(x)
				}
				return nil
			}); err != nil {
				return err
			}
			r.Labels[k] = v
		}
		return nil
	})
	return r, err
}

// eachField calls fn for every length-delimited field; other wire types are skipped.
func eachField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			b = b[m:]
			continue
		}
		value, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return protowire.ParseError(m)
		}
		if err := fn(num, value); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// Register serves Greeter.SayHello on s, answering with reply(name).
func Register(s *grpc.Server, reply func(name string) Reply) {
	handler := func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		name, err := DecodeRequest(in)
		if err != nil {
			return nil, err
		}
		out := EncodeReply(reply(name))
		return &out, nil
	}
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: Service,
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "SayHello", Handler: handler}},
	}, struct{}{})
}
