// A grpc-go Greeter server that registers itself in etcd the way Go services do:
// go.etcd.io/etcd/client/v3/naming/endpoints, under a lease kept alive by the client.
// It prints one JSON line once registered, and on SIGTERM deletes its key before stopping.
//
//	server -etcd 127.0.0.1:2379 -prefix services/hello -addr 127.0.0.5:50051 -name go-1
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"google.golang.org/grpc"

	"grpclb.test/etcd-interop/greeter"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "etcd-interop server: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	etcdEndpoints := flag.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma-separated")
	prefix := flag.String("prefix", "", "service prefix (the target etcd:///<prefix>)")
	addr := flag.String("addr", "", "host:port to listen on and register")
	name := flag.String("name", "go-server", "backend name echoed in replies and used as the key suffix")
	version := flag.String("version", "go", "version label in the endpoint metadata")
	ttl := flag.Int64("ttl", 5, "lease TTL in seconds")
	flag.Parse()
	if *prefix == "" || *addr == "" {
		fail("-prefix and -addr are required")
	}

	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fail("listen %s: %v", *addr, err)
	}
	server := grpc.NewServer(grpc.ForceServerCodec(greeter.RawCodec{}))
	labels := map[string]string{"version": *version, "lang": "go"}
	greeter.Register(server, func(n string) greeter.Reply {
		return greeter.Reply{Message: "Hello " + n, Backend: *name, Address: *addr, Labels: labels}
	})
	go func() {
		if err := server.Serve(lis); err != nil {
			fail("serve: %v", err)
		}
	}()

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*etcdEndpoints, ","),
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		fail("etcd client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	manager, err := endpoints.NewManager(cli, *prefix)
	if err != nil {
		fail("endpoints manager: %v", err)
	}
	lease, err := cli.Grant(ctx, *ttl)
	if err != nil {
		fail("lease grant: %v", err)
	}
	key := *prefix + "/" + *name
	endpoint := endpoints.Endpoint{Addr: *addr, Metadata: map[string]any{"version": *version, "weight": 1}}
	if err := manager.AddEndpoint(ctx, key, endpoint, clientv3.WithLease(lease.ID)); err != nil {
		fail("add endpoint: %v", err)
	}
	alive, err := cli.KeepAlive(context.Background(), lease.ID)
	if err != nil {
		fail("keepalive: %v", err)
	}
	go func() {
		for range alive {
		}
	}()
	line, _ := json.Marshal(map[string]any{"registered": key, "addr": *addr, "lease": lease.ID})
	fmt.Println(string(line))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if err := manager.DeleteEndpoint(dctx, key); err != nil {
		fmt.Fprintf(os.Stderr, "etcd-interop server: delete endpoint: %v\n", err)
	}
	server.GracefulStop()
}
