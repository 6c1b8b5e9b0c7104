package catalog

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
		kind    Kind
	}{
		{name: "auth-server", kind: KindAPI},
		{name: "authz-server", kind: KindAPI},
		{name: "auth-client", kind: KindSPA},
		{name: "portal-client", kind: KindSPA},
		{name: "portal-server", wantErr: `unknown service "portal-server" (known: auth-server, authz-server, auth-client, portal-client)`},
		{name: "", wantErr: `unknown service ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Lookup(tt.name)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.kind, s.Kind)
		})
	}
}

func TestAPIsExposeTheDocumentedEndpoints(t *testing.T) {
	for _, s := range All() {
		if !s.IsAPI() {
			require.Zero(t, s.TCPPort, s.Name)
			require.Empty(t, s.Stores, s.Name)
			continue
		}
		require.Equal(t, 8000, s.HTTPPort, s.Name)
		require.Equal(t, 8010, s.TCPPort, s.Name)
		require.Equal(t, "/health/ready", s.ReadinessPath, s.Name)
		require.Equal(t, "/metrics", s.MetricsPath, s.Name)
		require.Len(t, s.Stores, 2, s.Name)
		require.Equal(t, "mysql", s.Stores[0].Engine, s.Name)
		require.Equal(t, "redis", s.Stores[1].Engine, s.Name)
		for _, c := range s.Calls {
			_, err := Lookup(c)
			require.NoError(t, err, "%s calls an unknown service", s.Name)
		}
	}
}

func TestStoresMatchTheDataServerPorts(t *testing.T) {
	got := map[string]int{}
	for _, d := range Stores() {
		got[d.Name] = d.Port
	}
	require.Equal(t, map[string]int{"auth-mysql": 3307, "auth-redis": 6380, "authz-mysql": 3308, "authz-redis": 6381}, got)
}

func TestSelect(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{in: nil, want: Names()},
		{in: []string{"portal-client", "auth-server", "auth-server"}, want: []string{"auth-server", "portal-client"}},
		{in: []string{" authz-server "}, want: []string{"authz-server"}},
		{in: []string{"auth-server", "nope"}, wantErr: `unknown service "nope"`},
	}
	for _, tt := range tests {
		got, err := Select(tt.in)
		if tt.wantErr != "" {
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, got)
			continue
		}
		require.NoError(t, err)
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		require.Equal(t, tt.want, names)
	}
}

func TestAllReturnsACopy(t *testing.T) {
	a := All()
	a[0].Name = "changed"
	a[0].Stores[0].Port = 1
	require.Equal(t, "auth-server", All()[0].Name)
	require.Equal(t, 3307, All()[0].Stores[0].Port)
}
