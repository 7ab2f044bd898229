// Command etcd is upstream's etcd server (the version k8s.io/kubernetes itself requires),
// built from the module proxy for the controlplane tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
