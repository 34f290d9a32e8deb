// etcd from the Go module proxy: go.etcd.io/etcd/server/v3 cannot be `go install`ed (its go.mod replaces sibling
// modules with local paths), so this module requires it and calls its main. Debian's etcd 3.4 is too old for the
// apiserver's watch progress requests, which kube 1.36 clients rely on.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
