package binaries

// The test machines' kernel is built without CONFIG_NFT_QUEUE (it has
// NETFILTER_XT_TARGET_NFQUEUE and NFT_COMPAT). kube-network-policies v0.8.0
// sends the packets of selected pods to user space with the native nftables
// `queue` expression, so there every sync fails ("netlink receive: no such
// file or directory") and no policy is enforced, silently. The patch emits the
// xtables NFQUEUE target, revision 3, through nft_compat instead: the same
// queue, the same bypass (fail-open) behaviour, one queue in total.
// docs/testenv.md ("The real node's programs") tells the story.

// knpQueueFile is added to the networkpolicy package of kube-network-policies.
const knpQueueFile = `package networkpolicy

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// xtNFQueue is the xtables NFQUEUE target, revision 3, run through nft_compat:
// struct xt_NFQ_info_v3 { __u16 queuenum; __u16 queues_total; __u16 flags; } in
// host byte order, padded to XT_ALIGN (8 bytes) as iptables-nft sends it.
// Flag 0x1 (NFQ_FLAG_BYPASS) accepts packets while no program listens.
// Added by krgeobuk-infra: this kernel has no nft_queue, only xt_NFQUEUE.
func xtNFQueue(num uint16, bypass bool) *expr.Target {
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if bypass {
		binary.NativeEndian.PutUint16(info[4:], 1)
	}
	payload := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &payload}
}
`

// knpPatch is the v0.8.0 patch: the controller's two rule sets (with and
// without admin network policies) and the DNS agent's rule queue through
// xtNFQueue.
var knpPatch = Patch{
	Why:   "kube-network-policies queues packets with the xtables NFQUEUE target (this kernel has no nft_queue)",
	Write: map[string]string{"pkg/networkpolicy/zz_krgeobuk_xtqueue.go": knpQueueFile},
	Edits: []Edit{
		{
			File:  "pkg/networkpolicy/controller.go",
			Old:   "queue := &expr.Queue{Num: uint16(c.config.QueueID)}\n\tif c.config.FailOpen {\n\t\tqueue.Flag = expr.QueueFlagBypass\n\t}\n",
			New:   "queue := xtNFQueue(uint16(c.config.QueueID), c.config.FailOpen)\n",
			Count: 2,
		},
		{
			File:  "pkg/networkpolicy/dnsagent.go",
			Old:   "&expr.Queue{Num: uint16(n.nfQueueID), Flag: expr.QueueFlagBypass},",
			New:   "xtNFQueue(uint16(n.nfQueueID), true),",
			Count: 1,
		},
	},
}
