// A grpc-go client that finds its backends through etcd's own gRPC resolver
// (go.etcd.io/etcd/client/v3/naming/resolver) and calls Greeter.SayHello round robin until it
// has reached every expected address, then prints one JSON line with the tally.
//
//	client -etcd 127.0.0.1:2379 -prefix services/hello -expect 127.0.0.2:5000,127.0.0.3:5000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"grpclb.test/etcd-interop/greeter"
)

func main() {
	etcdEndpoints := flag.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma-separated")
	prefix := flag.String("prefix", "", "service prefix (the target etcd:///<prefix>)")
	expect := flag.String("expect", "", "addresses that must each answer at least once, comma-separated")
	minCalls := flag.Int("calls", 30, "calls to make at least")
	timeout := flag.Duration("timeout", 20*time.Second, "give up after this long")
	flag.Parse()

	started := time.Now()
	result := map[string]any{}
	perAddress := map[string]int{}
	labels := map[string]map[string]string{}
	errors := 0
	lastError := ""
	defer func() {
		result["perAddress"] = perAddress
		result["labels"] = labels
		result["errors"] = errors
		result["lastError"] = lastError
		result["elapsedMs"] = time.Since(started).Milliseconds()
		line, _ := json.Marshal(result)
		fmt.Println(string(line))
	}()

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*etcdEndpoints, ","),
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		lastError = err.Error()
		os.Exit(1)
	}
	defer cli.Close()
	builder, err := resolver.NewBuilder(cli)
	if err != nil {
		lastError = err.Error()
		os.Exit(1)
	}
	conn, err := grpc.NewClient("etcd:///"+*prefix,
		grpc.WithResolvers(builder),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(greeter.RawCodec{})),
	)
	if err != nil {
		lastError = err.Error()
		os.Exit(1)
	}
	defer conn.Close()

	want := map[string]bool{}
	for _, a := range strings.Split(*expect, ",") {
		if a != "" {
			want[a] = true
		}
	}
	covered := func() bool {
		for a := range want {
			if perAddress[a] == 0 {
				return false
			}
		}
		return true
	}
	deadline := started.Add(*timeout)
	calls := 0
	for time.Now().Before(deadline) && (calls < *minCalls || !covered()) {
		calls++
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		in := greeter.EncodeRequest("go-client")
		var out []byte
		err := conn.Invoke(ctx, greeter.SayHelloPath, &in, &out, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			errors++
			lastError = err.Error()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		reply, err := greeter.DecodeReply(out)
		if err != nil {
			errors++
			lastError = err.Error()
			continue
		}
		perAddress[reply.Address]++
		labels[reply.Address] = reply.Labels
	}
	result["calls"] = calls
	result["covered"] = covered()
	if !covered() {
		defer os.Exit(1)
	}
}
