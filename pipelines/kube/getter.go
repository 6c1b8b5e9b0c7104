package kube

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Getter adapts the client to Helm's configuration interface, so the Helm
// SDK uses exactly these credentials and namespace instead of reading
// $KUBECONFIG or ~/.kube/config.
func (c *Client) Getter() genericclioptions.RESTClientGetter { return getter{c} }

type getter struct{ c *Client }

func (g getter) ToRESTConfig() (*rest.Config, error) { return g.c.RESTConfig(), nil }

func (g getter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	return g.c.Discovery, nil
}

func (g getter) ToRESTMapper() (meta.RESTMapper, error) { return g.c.Mapper, nil }

func (g getter) ToRawKubeConfigLoader() clientcmd.ClientConfig { return g.c.loader }
