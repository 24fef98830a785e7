package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// Sending limits, the operator's brakes on what one user or one room may
// send:
//
//   - the largest total of one packet (MaxPacketTotal), checked before
//     anything else: total_too_large;
//   - a sender's total and number of packets per UTC day (DailySendTotal,
//     DailySendCount): daily_limit. A rain counts as all of its packets;
//   - the creates per room per minute (RoomPacketsPerMinute), a packet or a
//     rain counting as one: room_rate_limited.
//
// The daily and per-room counters live in Redis (Counters), so they hold
// across every instance, and each is reserved by one script before the
// sender is debited, so that concurrent creates cannot together pass a
// limit. A create that is refused afterwards gives its reservation back; a
// create whose outcome is unknown (the store was unavailable) keeps it, as
// it may have been debited: a limit may be under-granted, never passed.
// An Idempotency-Key is counted once a day, however often it is retried.
//
// Keys (hash tags as in packet's key layout):
//
//	<prefix>:{u:<id>}:sent:<yyyymmdd>   hash    total, count, k:<Idempotency-Key> (expires the day after)
//	<prefix>:{r:<room>}:sent:<minute>   string  creates in that unix minute (expires after 2 minutes)

//go:embed lua/*.lua
var luaFiles embed.FS

// Codes of the sending limits; daily_limit and room_rate_limited answer 429.
var (
	ErrDailyLimit      = &apierr.Error{Code: "daily_limit", Message: "the daily sending limit is reached"}
	ErrRoomRateLimited = &apierr.Error{Code: "room_rate_limited", Message: "too many packets in this room; try again in a minute"}
)

// sendLimits enforces the limits above.
type sendLimits struct {
	rdb                      redis.UniversalClient
	prefix                   string
	dailyTotal, maxTotal     int64
	dailyCount, roomPerMin   int
	now                      func() time.Time
	log                      *slog.Logger
	dailyReserve, dailyFree  *redis.Script
	roomReserve, roomRelease *redis.Script
}

func newSendLimits(cfg Config) *sendLimits {
	load := func(name string) *redis.Script {
		src, err := luaFiles.ReadFile("lua/" + name + ".lua")
		if err != nil {
			panic("web: missing embedded script " + name) // a build defect, not input
		}
		return redis.NewScript(string(src))
	}
	return &sendLimits{
		rdb: cfg.Counters, prefix: cfg.KeyPrefix,
		dailyTotal: cfg.DailySendTotal, dailyCount: cfg.DailySendCount,
		roomPerMin: cfg.RoomPacketsPerMinute, maxTotal: cfg.MaxPacketTotal, now: cfg.Now, log: cfg.Logger,
		dailyReserve: load("dailyreserve"), dailyFree: load("dailyrelease"),
		roomReserve: load("roomreserve"), roomRelease: load("roomrelease"),
	}
}

// sendHold is what one create reserved. settle gives back what the create
// did not use.
type sendHold struct {
	l            *sendLimits
	dayKey, idem string
	roomKey      string // "" when the room was not counted
	perTotal     int64
	packets      int
}

// dayKey is the key of user's counters on the UTC day of now, and how long
// it lives: to the end of the next day, so a day's counts outlive it.
func (l *sendLimits) dayKey(user string, now time.Time) (string, time.Duration) {
	day := now.UTC().Truncate(24 * time.Hour)
	return l.prefix + ":{u:" + user + "}:sent:" + day.Format("20060102"), day.Add(48 * time.Hour).Sub(now)
}

// roomKey is the key of room's counter in the minute of now.
func (l *sendLimits) roomKey(room string, now time.Time) string {
	return l.prefix + ":{r:" + room + "}:sent:" + strconv.FormatInt(now.Unix()/60, 10)
}

// reserveSend checks a create of packets packets of perTotal fen each by
// sender into room against every sending limit, and reserves it against
// the counted ones. idem is the request's Idempotency-Key ("" for none).
func (a *App) reserveSend(ctx context.Context, sender, room string, perTotal int64, packets int, idem string) (*sendHold, error) {
	l := a.sends
	if l.maxTotal > 0 && perTotal > l.maxTotal {
		a.metrics.sendLimited("max_total")
		return nil, apierr.Refuse(packet.ErrTotalTooLarge, "a packet holds at most ¥%s, this one ¥%s",
			packet.FormatYuan(l.maxTotal), packet.FormatYuan(perTotal))
	}
	h := &sendHold{l: l, idem: idem, perTotal: perTotal, packets: packets}
	if l.rdb == nil {
		return h, nil
	}
	now := l.now()
	if l.dailyTotal > 0 || l.dailyCount > 0 {
		if err := a.reserveDaily(ctx, h, sender, now); err != nil {
			return nil, err
		}
	}
	if l.roomPerMin > 0 {
		key := l.roomKey(room, now)
		ok, err := l.roomReserve.Run(ctx, l.rdb, []string{key}, l.roomPerMin, 120).Int()
		if err == nil && ok == 0 {
			a.metrics.sendLimited("room_rate")
			err = apierr.Refuse(ErrRoomRateLimited, "room %q has had %d packets this minute, the most allowed; try again in %ds",
				room, l.roomPerMin, 60-now.Unix()%60)
		} else if err != nil {
			err = apierr.Refuse(packet.ErrUnavailable, "the sending limits could not be checked; try again")
		}
		if err != nil {
			h.release(ctx, h.packets, true)
			return nil, err
		}
		h.roomKey = key
	}
	return h, nil
}

func (a *App) reserveDaily(ctx context.Context, h *sendHold, sender string, now time.Time) error {
	l := h.l
	key, ttl := l.dayKey(sender, now)
	res, err := l.dailyReserve.Run(ctx, l.rdb, []string{key},
		strconv.FormatInt(h.perTotal*int64(h.packets), 10), h.packets,
		limitArg(l.dailyTotal), limitArg(int64(l.dailyCount)), int64(ttl/time.Second)+1, h.idem).Slice()
	if err != nil || len(res) != 3 {
		a.log.Warn("daily sending limit not checked", "err", err)
		return apierr.Refuse(packet.ErrUnavailable, "the sending limits could not be checked; try again")
	}
	result, _ := res[0].(int64)
	sentTotal, _ := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	sentCount := fmt.Sprint(res[2])
	resets := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	in := resets.Sub(now).Truncate(time.Minute)
	switch result {
	case 0:
		h.dayKey = key
		return nil
	case 1:
		a.metrics.sendLimited("daily_total")
		return apierr.Refuse(ErrDailyLimit, "the daily total limit of ¥%s would be passed: ¥%s sent today, this asks ¥%s; it resets at 00:00 UTC (in %v)",
			packet.FormatYuan(l.dailyTotal), packet.FormatYuan(sentTotal), packet.FormatYuan(h.perTotal*int64(h.packets)), in)
	default:
		a.metrics.sendLimited("daily_count")
		return apierr.Refuse(ErrDailyLimit, "the daily count limit of %d packets would be passed: %s sent today, this asks %d; it resets at 00:00 UTC (in %v)",
			l.dailyCount, sentCount, h.packets, in)
	}
}

// limitArg is a limit as the scripts take it: "-1" for none.
func limitArg(v int64) string {
	if v <= 0 {
		return "-1"
	}
	return strconv.FormatInt(v, 10)
}

// settle gives back what a create reserved and did not use, given what
// Open returned for asked packets: all of it after a refusal or a replay
// (the first request counted it), the unopened packets of a rain cut
// short. After an error without a code of its own (unavailable) the create
// may have been debited, so its reservation stays.
func (h *sendHold) settle(ctx context.Context, o *packet.Opened, err error) {
	switch {
	case err != nil:
		if code := apierr.CodeOf(err); code != "" && !errors.Is(err, packet.ErrUnavailable) {
			h.release(ctx, h.packets, true)
		}
	case o.Replayed:
		h.release(ctx, h.packets, true)
	case len(o.Drafts) < h.packets:
		h.release(ctx, h.packets-len(o.Drafts), false)
	}
}

// release gives back n packets of the daily reservation, and with all the
// room's count and this request's hold on its Idempotency-Key.
func (h *sendHold) release(ctx context.Context, n int, all bool) {
	l := h.l
	// Released even when the request's context has ended.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if h.dayKey != "" {
		drop := "0"
		if all {
			drop = "1"
		}
		if err := l.dailyFree.Run(ctx, l.rdb, []string{h.dayKey}, strconv.FormatInt(h.perTotal*int64(n), 10), n, h.idem, drop).Err(); err != nil {
			// Kept counted: the sender may send a little less today.
			l.log.Warn("daily sending limit not given back", "err", err)
		}
	}
	if all && h.roomKey != "" {
		if err := l.roomRelease.Run(ctx, l.rdb, []string{h.roomKey}).Err(); err != nil {
			l.log.Warn("room sending limit not given back", "err", err)
		}
	}
}

// keyOf is idem's key, "" without one.
func keyOf(idem *packet.Idempotency) string {
	if idem == nil {
		return ""
	}
	return idem.Key
}
