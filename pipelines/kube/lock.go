package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	retry "github.com/sethvargo/go-retry"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
)

// Holder describes who holds (or held) a deploy lock.
type Holder struct {
	Identity  string    `json:"identity"`
	RenewedAt time.Time `json:"renewedAt"`
	// Expires is when the lease counts as stale unless renewed before.
	Expires time.Time `json:"expires"`
	// Host and PID name the holder's process where it recorded them.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Gone says why the holder is known to be dead before its lease
	// expired: its process on this very host has exited.
	Gone string `json:"gone,omitempty"`
}

// HeldError is returned by AcquireLock when another live holder has the lock.
type HeldError struct {
	Lease  string // namespace/name
	Holder Holder
	// At is when the lock was found held; the message's "ago" and "in" are
	// relative to it.
	At time.Time
}

func (e *HeldError) Error() string {
	h := e.Holder
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "deploy lock %s is held by %q", e.Lease, h.Identity)
	if h.PID > 0 {
		fmt.Fprintf(&b, " (process %d on %s)", h.PID, h.Host)
	}
	fmt.Fprintf(&b, ": another deploy is running. It last renewed the lock at %s (%s ago)",
		h.RenewedAt.UTC().Format(time.RFC3339), at.Sub(h.RenewedAt).Round(time.Second))
	fmt.Fprintf(&b, "; should it stop renewing, the lock counts as stale at %s (in %s) and the next deploy takes it over.",
		h.Expires.UTC().Format(time.RFC3339), h.Expires.Sub(at).Round(time.Second))
	b.WriteString(" If you know that deploy is gone (its machine is down, say), take the lock over deliberately: " +
		"pass --take-over-lock to deploy or rollback (both the CLI and the Dagger module take it).")
	return b.String()
}

// LockOptions change how AcquireLock treats a live holder.
type LockOptions struct {
	// TakeOver takes the lock even from a holder that looks alive: for a
	// person who knows that deploy is gone (its machine died) and will not
	// wait for its lease to expire. The holder, if it still runs, loses the
	// lock at its next renewal and stops.
	TakeOver bool
}

// Lock is a held deploy lock: a coordination.k8s.io/v1 Lease whose holder
// identity is ours. While held it is renewed every third of its TTL; a holder
// that dies simply stops renewing and the lock expires after the TTL.
type Lock struct {
	Lease    string // namespace/name
	Identity string
	// TookOver is the previous holder whose lease had expired, whose
	// process was gone, or who was displaced deliberately (LockOptions
	// TakeOver); nil when the lock was free. TookOverWhy says which.
	TookOver    *Holder
	TookOverWhy string

	c         *Client
	namespace string
	name      string
	ttl       time.Duration
	stop      context.CancelFunc
	done      chan struct{}
	lost      chan struct{}
	lostOnce  sync.Once
	lostCause error
}

// maxLockRaces bounds how often AcquireLock re-reads the Lease after losing
// an optimistic-concurrency race with another acquirer.
const maxLockRaces = 5

// AcquireLock takes the Lease namespace/name for identity with the given TTL.
// It succeeds when the Lease does not exist, has no holder, is already ours,
// has expired, or is held by a process on this same host that has exited
// (then Lock.TookOver names the previous holder). A live foreign holder
// yields a *HeldError naming it, unless opts asks to take over. Transient
// API failures are retried within budget b. The lock is renewed in the
// background until Release. opts is variadic so that callers written before
// it keep compiling; at most one is used.
func AcquireLock(ctx context.Context, c *Client, namespace, name, identity string, ttl time.Duration, b retry.Backoff, opts ...LockOptions) (*Lock, error) {
	var o LockOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if identity == "" {
		return nil, errors.New("deploy lock: empty holder identity")
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("deploy lock: TTL %s is shorter than one second", ttl)
	}
	ref := namespace + "/" + name
	leases := c.Typed.CoordinationV1().Leases(namespace)
	var took *Holder
	var why string
	for race := 0; ; race++ {
		took, why = nil, ""
		var lease *coordinationv1.Lease
		err := Retry(ctx, b, func(ctx context.Context) error {
			l, err := leases.Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				lease = nil
				return nil
			}
			lease = l
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("deploy lock %s: %w", ref, err)
		}
		now := time.Now()
		if lease == nil {
			lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
			fill(lease, identity, ttl, now, true)
			err = Retry(ctx, b, func(ctx context.Context) error {
				_, err := leases.Create(ctx, lease, metav1.CreateOptions{})
				return err
			})
		} else {
			h, live := holderOf(lease, now)
			switch {
			case h.Identity == "" || h.Identity == identity:
			case live && !o.TakeOver:
				return nil, &HeldError{Lease: ref, Holder: h, At: now}
			case live:
				took, why = &h, fmt.Sprintf("taken over deliberately while its lease was live until %s", h.Expires.UTC().Format(time.RFC3339))
			case h.Gone != "":
				took, why = &h, h.Gone
			default:
				took, why = &h, fmt.Sprintf("its lease expired at %s without renewal", h.Expires.UTC().Format(time.RFC3339))
			}
			fill(lease, identity, ttl, now, h.Identity != identity)
			err = Retry(ctx, b, func(ctx context.Context) error {
				_, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
				return err
			})
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			if race < maxLockRaces {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("deploy lock %s: %w", ref, err)
		}
		break
	}
	l := &Lock{
		Lease: ref, Identity: identity, TookOver: took, TookOverWhy: why,
		c: c, namespace: namespace, name: name, ttl: ttl,
		done: make(chan struct{}), lost: make(chan struct{}),
	}
	renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = stop
	go l.renew(renewCtx)
	return l, nil
}

func fill(l *coordinationv1.Lease, identity string, ttl time.Duration, now time.Time, newHolder bool) {
	secs := int32(ttl / time.Second)
	mt := metav1.NewMicroTime(now)
	l.Spec.HolderIdentity = &identity
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.RenewTime = &mt
	if newHolder {
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		for k, v := range thisProcess().annotations() {
			if v == "" {
				delete(l.Annotations, k)
			} else {
				l.Annotations[k] = v
			}
		}
		l.Spec.AcquireTime = &mt
		n := int32(0)
		if l.Spec.LeaseTransitions != nil {
			n = *l.Spec.LeaseTransitions + 1
		}
		l.Spec.LeaseTransitions = &n
	}
}

// holderOf reads the holder of a Lease and whether it is still live at now:
// its lease has not expired and, when it runs on this very host, its process
// still exists. The expiry is computed on this machine's clock from the
// holder's renew time, so clocks that disagree by more than the TTL can
// misjudge.
func holderOf(l *coordinationv1.Lease, now time.Time) (Holder, bool) {
	var h Holder
	if l.Spec.HolderIdentity != nil {
		h.Identity = *l.Spec.HolderIdentity
	}
	if h.Identity != "" {
		p := processOf(l.Annotations)
		h.Host, h.PID = p.host, p.pid
		h.Gone = p.gone()
	}
	switch {
	case l.Spec.RenewTime != nil:
		h.RenewedAt = l.Spec.RenewTime.Time
	case l.Spec.AcquireTime != nil:
		h.RenewedAt = l.Spec.AcquireTime.Time
	}
	if l.Spec.LeaseDurationSeconds != nil {
		h.Expires = h.RenewedAt.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	}
	return h, h.Identity != "" && now.Before(h.Expires) && h.Gone == ""
}

// Lost is closed when a renewal finds the lock taken by someone else (for
// example after this process stalled for longer than the TTL). A deploy must
// stop changing the cluster when that happens.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// LostCause says why Lost was closed, or nil.
func (l *Lock) LostCause() error {
	select {
	case <-l.lost:
		return l.lostCause
	default:
		return nil
	}
}

func (l *Lock) markLost(err error) {
	l.lostOnce.Do(func() {
		l.lostCause = err
		close(l.lost)
	})
}

func (l *Lock) renew(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A renewal has until the lease would expire; failing that long means
		// another deploy may take over, which the next read detects.
		rctx, cancel := context.WithTimeout(ctx, l.ttl)
		err := Retry(rctx, Budget(l.ttl), func(ctx context.Context) error {
			leases := l.c.Typed.CoordinationV1().Leases(l.namespace)
			lease, err := leases.Get(ctx, l.name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if h, _ := holderOf(lease, time.Now()); h.Identity != l.Identity {
				return &HeldError{Lease: l.Lease, Holder: h}
			}
			fill(lease, l.Identity, l.ttl, time.Now(), false)
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				return retry.RetryableError(err)
			}
			return err
		})
		cancel()
		var held *HeldError
		if errors.As(err, &held) || apierrors.IsNotFound(err) {
			l.markLost(fmt.Errorf("deploy lock %s lost: %w", l.Lease, err))
			return
		}
	}
}

// Release stops renewing and frees the Lease (holder cleared, record kept)
// if it is still ours. It works even when the deploy's own context has been
// cancelled: pass a fresh, bounded one.
func (l *Lock) Release(ctx context.Context) error {
	l.stop()
	<-l.done
	err := Retry(ctx, Budget(budget.Defaults().Cleanup), func(ctx context.Context) error {
		leases := l.c.Typed.CoordinationV1().Leases(l.namespace)
		lease, err := leases.Get(ctx, l.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if h, _ := holderOf(lease, time.Now()); h.Identity != l.Identity {
			return nil // someone took it over; it is not ours to free
		}
		lease.Spec.HolderIdentity = nil
		lease.Spec.RenewTime = nil
		lease.Spec.AcquireTime = nil
		for _, k := range holderAnnotations {
			delete(lease.Annotations, k)
		}
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return retry.RetryableError(err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("release deploy lock %s: %w", l.Lease, err)
	}
	return nil
}

// ReadLock returns the current holder of the Lease, or nil when it is free or
// absent. Status reports use it.
func ReadLock(ctx context.Context, c *Client, namespace, name string, b retry.Backoff) (*Holder, bool, error) {
	var out *Holder
	var live bool
	err := Retry(ctx, b, func(ctx context.Context) error {
		lease, err := c.Typed.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		h, ok := holderOf(lease, time.Now())
		if h.Identity != "" {
			out, live = &h, ok
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("deploy lock %s/%s: %w", namespace, name, err)
	}
	return out, live, nil
}
