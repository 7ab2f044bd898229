// Command kube-controller-manager is upstream's kube-controller-manager; the tests start it
// with --controllers naming only the Job, garbage-collector, TTL-after-finished and
// service-account controllers (see scripts/controlplane.py).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
