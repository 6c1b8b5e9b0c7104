package realnodetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
)

// DataServer is the apps' world outside the cluster on a real node: the
// stores on the data-server address and the Secrets made out of band.
type DataServer struct {
	MySQL map[string]*dbtest.MariaDB // by store name (auth-mysql, ...)
	Redis map[string]*dbtest.Redis
	// Values point the chart at them: the data-server address, each store's
	// port and, where the environment renders the credentials Secret from
	// values (development), the credentials.
	Values map[string]any
}

// StartDataServer starts a MariaDB or Redis for every store environment
// envName's APIs use, in the node's data-server network, listening on the
// data-server address; creates each API's database and user; and creates in
// namespace ns the Secrets the chart expects out of band: each API's JWT key
// pairs and, outside development, its credentials. The servers stop with
// the test.
func StartDataServer(tb testing.TB, c *realnode.Cluster, admin kubernetes.Interface, envName, ns string) *DataServer {
	tb.Helper()
	ctx := context.Background()
	src, err := appenv.EmbeddedSource(envName)
	require.NoError(tb, err)
	src.Env.Namespace = ns
	network, err := c.DataServer()
	require.NoError(tb, err)
	res, err := appenv.Render(ctx, src.Chart, src.Env)
	require.NoError(tb, err)
	rendered := map[string]bool{}
	for _, o := range res.Objects {
		if s, ok := o.Typed.(*corev1.Secret); ok {
			rendered[s.Name] = true
		}
	}
	ds := &DataServer{MySQL: map[string]*dbtest.MariaDB{}, Redis: map[string]*dbtest.Redis{}}
	ports, secretValues := map[string]any{}, map[string]any{}
	for _, svc := range catalog.All() {
		if !svc.IsAPI() {
			continue
		}
		se, err := appenv.ForService(ctx, src, svc.Name, nil)
		require.NoError(tb, err)
		stores, err := itest.Stores(se)
		require.NoError(tb, err)
		secrets, err := itest.NewSecretValues(se)
		require.NoError(tb, err)
		for _, st := range stores {
			switch st.Engine {
			case "mysql":
				m := dbtest.StartMariaDB(tb, dbtest.InNetwork(network, c.DataServerIP()))
				db := se.Config["MYSQL_DATABASE"]
				require.NotEmpty(tb, db, "%s: MYSQL_DATABASE", svc.Name)
				m.Exec(tb, "", fmt.Sprintf("CREATE DATABASE `%s`; CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON `%s`.* TO '%s'@'%%';",
					db, secrets[itest.KeyMySQLUser], secrets[itest.KeyMySQLPassword], db, secrets[itest.KeyMySQLUser]))
				ds.MySQL[st.Alias] = m
				ports[st.Alias] = map[string]any{"port": m.Port}
			case "redis":
				r := dbtest.StartRedis(tb, dbtest.RedisInNetwork(network, c.DataServerIP()))
				secrets[itest.KeyRedisPassword] = r.Password
				ds.Redis[st.Alias] = r
				ports[st.Alias] = map[string]any{"port": r.Port}
			}
		}
		require.Len(tb, se.Secrets, 2, "%s reads its credentials and its JWT Secret", svc.Name)
		creds, jwt := map[string]any{}, map[string]string{}
		credStrings := map[string]string{}
		for k, v := range secrets {
			switch {
			case k == itest.KeyMySQLRoot:
			case slices.Contains(catalog.JWTKeys(), k):
				jwt[k] = v
			default:
				creds[k], credStrings[k] = v, v
			}
		}
		out := map[string]map[string]string{se.Secrets[1]: jwt}
		if rendered[se.Secrets[0]] {
			// Development renders the credentials Secret from values, as a
			// development deploy passes them.
			secretValues[svc.Name] = map[string]any{"secret": map[string]any{"values": creds}}
		} else {
			out[se.Secrets[0]] = credStrings
		}
		for name, data := range out {
			_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data,
			}, metav1.CreateOptions{})
			require.NoError(tb, err, name)
		}
	}
	ds.Values = map[string]any{
		"global":     map[string]any{"dataServer": map[string]any{"address": c.DataServerIP()}},
		"dataStores": ports,
		"services":   secretValues,
	}
	return ds
}
