// Chinese / English strings, error-code messages and formatting helpers.
// Static markup is translated through data-i18n attributes:
//   data-i18n="key"                    → textContent
//   data-i18n-attr="placeholder:key;aria-label:key2"

const STORAGE_KEY = 'hongbao.lang';
export const LANGS = ['zh', 'en'];

const zh = {
  'app.title': '红包 · Hongbao',
  'app.tagline': '实时红包 · 群聊与直播间',
  'join.heading': '进入房间',
  'join.name': '你的昵称',
  'join.namePlaceholder': '例如：小红',
  'join.room': '房间',
  'join.button': '进入',
  'join.joining': '正在进入…',
  'join.nameRequired': '请输入 1–32 个字的昵称',
  'join.gift': '新人赠送 ¥100.00 体验金',
  'header.balance': '余额',
  'header.room': '房间',
  'header.switchRoom': '切换房间',
  'header.me': '我',
  'header.changeName': '更换昵称',
  'presence.online': '{n} 人在线',
  'presence.list': '在线成员',
  'conn.connecting': '连接中…',
  'conn.open': '已连接',
  'conn.closed': '已断开',
  'conn.banner': '连接已断开，{s} 秒后重试…',
  'conn.bannerNow': '连接已断开，正在重连…',
  'conn.retry': '立即重试',
  'conn.restored': '已重新连接',
  'conn.limit4001': '你打开的连接太多了，请关闭一些标签页',
  'conn.limit4002': '来自你网络的连接太多了',
  'conn.limit4003': '服务器的房间已满',
  'conn.limit4004': '来自你网络的新房间太多了',
  'conn.limitBanner': '{reason}，{s} 秒后重试…',
  'lang.toggle': 'EN',
  'lang.toggleLabel': 'Switch to English',
  'chat.placeholder': '说点什么…',
  'chat.send': '发送',
  'chat.label': '聊天消息',
  'chat.empty': '还没有消息。发个红包热热场吧！',
  'chat.newMessages': '有新消息 ↓',
  'chat.tooLong': '消息最多 500 字',
  'chat.offline': '尚未连接，消息未发送',
  'chat.you': '我',
  'actions.packet': '发红包',
  'actions.rain': '红包雨',
  'packet.dialogTitle': '发红包',
  'packet.amountLucky': '总金额',
  'packet.amountEqual': '总金额',
  'packet.yuan': '元',
  'packet.count': '红包个数',
  'packet.countUnit': '个',
  'packet.kind': '类型',
  'packet.kindLucky': '拼手气红包',
  'packet.kindEqual': '普通红包',
  'packet.kindLuckyHint': '每人抽到的金额随机',
  'packet.kindEqualHint': '每人金额相同：{each}',
  'packet.greeting': '祝福语',
  'packet.submit': '塞钱进红包',
  'packet.sending': '正在发送…',
  'packet.cancel': '取消',
  'packet.balanceHint': '余额 {balance}',
  'packet.sent': '红包已发出',
  'card.brand': '红包',
  'card.lucky': '拼手气红包',
  'card.equal': '普通红包',
  'card.remaining': '剩 {left}/{count} 个',
  'card.opened': '已领取 {amount}',
  'card.empty': '已被领完',
  'card.expired': '已过期',
  'card.notYet': '{s} 秒后开抢',
  'card.open': '领取红包',
  'card.label': '{name}的红包：{greeting}，{status}',
  'open.from': '{name}的红包',
  'open.button': '開',
  'open.buttonLabel': '拆开红包',
  'open.close': '关闭',
  'open.seeDetail': '看看大家的手气 ›',
  'open.hintEmpty': '这个红包可能已经派完了',
  'open.hintExpired': '这个红包可能已经过期了',
  'open.yuan': '元',
  'open.savedToBalance': '已存入余额',
  'detail.title': '红包详情',
  'detail.summary': '已领取 {taken}/{count} 个，共 {takenAmount}/{total}',
  'detail.emptiedIn': '{d}被抢光',
  'detail.expired': '该红包已过期，未领取的金额已退回',
  'detail.waiting': '等待领取',
  'detail.luckiest': '手气最佳',
  'detail.noClaims': '还没有人领取',
  'detail.loading': '加载中…',
  'detail.error': '详情加载失败',
  'detail.me': '（我）',
  'rain.dialogTitle': '发起红包雨',
  'rain.packets': '红包数量',
  'rain.count': '每个红包份数',
  'rain.amount': '每个红包金额',
  'rain.duration': '持续时间（秒）',
  'rain.greeting': '祝福语',
  'rain.cost': '共需 {total}',
  'rain.submit': '开始下红包雨',
  'rain.starting': '{s} 秒后开始',
  'rain.live': '红包雨进行中',
  'rain.timeLeft': '剩余 {s} 秒',
  'rain.caught': '已抢到',
  'rain.tally': '已抢到 {amount}',
  'rain.dropLabel': '红包，点击领取',
  'rain.summaryTitle': '红包雨结束',
  'rain.summaryTotal': '你一共抢到',
  'rain.summaryCount': '抢到 {n} 个红包',
  'rain.summaryBest': '最佳一抢 {amount}',
  'rain.summaryNone': '这次一个都没抢到，下次手快点！',
  'rain.leaderboard': '本场排行',
  'rain.leaderboardEmpty': '还没有人抢到',
  'rain.leaderboardPartial': '排行可能不完整',
  'rain.close': '好的',
  'rain.short.sold_out': '手慢了',
  'rain.short.already_grabbed': '已领过',
  'rain.short.expired': '已过期',
  'rain.short.not_yet': '还没开始',
  'rain.short.other': '没抢到',
  'rain.invalid.packets': '红包数量需在 1 到 1000 之间',
  'rain.invalid.duration': '持续时间需在 1 到 600 秒之间',
  'rain.card': '{name} 发起了红包雨：{packets} 个红包',
  'rain.cardAnon': '红包雨来了：{packets} 个红包',
  'rain.cardEnded': '红包雨已结束 · 查看战绩',
  'rain.cardUpcoming': '红包雨进行中',
  'rain.started': '红包雨来了！',
  'rain.from': '{name} 的红包雨',
  'room.dialogTitle': '切换房间',
  'room.label': '房间名',
  'room.invalid': '房间名只能包含字母、数字、- 和 _（最多 64 个）',
  'room.go': '进入',
  'room.suggestions': '热门房间',
  'sys.youGrabbed': '你领取了{name}的红包，{amount}',
  'sys.grabbedYours': '{name}领取了你的红包',
  'sys.youGrabbedOwn': '你领取了自己发的红包，{amount}',
  'stats.received': '收到',
  'stats.sent': '发出',
  'stats.count': '{amount}（{n} 个）',
  'sys.yourEmpty': '你的红包已被领完，用时 {d}',
  'sys.yourExpired': '你的红包已过期，剩余金额已退回',
  'dur.ms': '{n} 毫秒',
  'dur.s': '{n} 秒',
  'dur.ms_s': '{n} 秒',
  'dur.m': '{m} 分 {s} 秒',
  'dur.h': '{h} 小时 {m} 分',
  'common.close': '关闭',
  'common.cancel': '取消',
  'error.generic': '出错了：{message}',
};

const en = {
  'app.title': 'Hongbao · Red Packets',
  'app.tagline': 'Real-time red packets for chats and live streams',
  'join.heading': 'Join a room',
  'join.name': 'Your name',
  'join.namePlaceholder': 'e.g. Alice',
  'join.room': 'Room',
  'join.button': 'Join',
  'join.joining': 'Joining…',
  'join.nameRequired': 'Please enter a name (1–32 characters)',
  'join.gift': 'New guests get ¥100.00 to play with',
  'header.balance': 'Balance',
  'header.room': 'Room',
  'header.switchRoom': 'Switch room',
  'header.me': 'Me',
  'header.changeName': 'Change name',
  'presence.online': '{n} online',
  'presence.list': 'Online now',
  'conn.connecting': 'Connecting…',
  'conn.open': 'Connected',
  'conn.closed': 'Disconnected',
  'conn.banner': 'Connection lost. Retrying in {s}s…',
  'conn.bannerNow': 'Connection lost. Reconnecting…',
  'conn.retry': 'Retry now',
  'conn.restored': 'Reconnected',
  'conn.limit4001': 'Too many connections for this user: close some tabs',
  'conn.limit4002': 'Too many connections from this address',
  'conn.limit4003': 'This server has too many rooms',
  'conn.limit4004': 'Too many new rooms from this address',
  'conn.limitBanner': '{reason}. Retrying in {s}s…',
  'lang.toggle': '中文',
  'lang.toggleLabel': '切换到中文',
  'chat.placeholder': 'Say something…',
  'chat.send': 'Send',
  'chat.label': 'Chat messages',
  'chat.empty': 'No messages yet. Send a red packet to warm things up!',
  'chat.newMessages': 'New messages ↓',
  'chat.tooLong': 'Messages are limited to 500 characters',
  'chat.offline': 'Not connected: message not sent',
  'chat.you': 'You',
  'actions.packet': 'Packet',
  'actions.rain': 'Rain',
  'packet.dialogTitle': 'Send a red packet',
  'packet.amountLucky': 'Total amount',
  'packet.amountEqual': 'Total amount',
  'packet.yuan': 'CNY',
  'packet.count': 'Number of shares',
  'packet.countUnit': '',
  'packet.kind': 'Type',
  'packet.kindLucky': 'Lucky draw',
  'packet.kindEqual': 'Equal shares',
  'packet.kindLuckyHint': 'Everyone gets a random amount',
  'packet.kindEqualHint': 'Everyone gets {each}',
  'packet.greeting': 'Greeting',
  'packet.submit': 'Put money in',
  'packet.sending': 'Sending…',
  'packet.cancel': 'Cancel',
  'packet.balanceHint': 'Balance {balance}',
  'packet.sent': 'Red packet sent',
  'card.brand': 'Red packet',
  'card.lucky': 'Lucky draw',
  'card.equal': 'Equal shares',
  'card.remaining': '{left}/{count} left',
  'card.opened': 'Opened · {amount}',
  'card.empty': 'All gone',
  'card.expired': 'Expired',
  'card.notYet': 'Opens in {s}s',
  'card.open': 'Open red packet',
  'card.label': 'Red packet from {name}: {greeting}, {status}',
  'open.from': 'Red packet from {name}',
  'open.button': '開',
  'open.buttonLabel': 'Open the red packet',
  'open.close': 'Close',
  'open.seeDetail': 'See how everyone did ›',
  'open.hintEmpty': 'This packet may already be empty',
  'open.hintExpired': 'This packet may have expired',
  'open.yuan': 'yuan',
  'open.savedToBalance': 'Added to your balance',
  'detail.title': 'Packet details',
  'detail.summary': '{taken}/{count} opened · {takenAmount}/{total}',
  'detail.emptiedIn': 'All taken in {d}',
  'detail.expired': 'Expired: the unclaimed amount was refunded',
  'detail.waiting': 'Waiting to be opened',
  'detail.luckiest': 'Luckiest',
  'detail.noClaims': 'Nobody has opened it yet',
  'detail.loading': 'Loading…',
  'detail.error': 'Could not load details',
  'detail.me': ' (you)',
  'rain.dialogTitle': 'Start a packet rain',
  'rain.packets': 'Packets',
  'rain.count': 'Shares per packet',
  'rain.amount': 'Amount per packet',
  'rain.duration': 'Duration (seconds)',
  'rain.greeting': 'Greeting',
  'rain.cost': 'Costs {total} in total',
  'rain.submit': 'Make it rain',
  'rain.starting': 'Starts in {s}s',
  'rain.live': 'Packet rain',
  'rain.timeLeft': '{s}s left',
  'rain.caught': 'Caught',
  'rain.tally': 'Caught {amount}',
  'rain.dropLabel': 'Red packet: tap to grab',
  'rain.summaryTitle': 'The rain is over',
  'rain.summaryTotal': 'You caught',
  'rain.summaryCount': '{n} packets caught',
  'rain.summaryBest': 'Best catch {amount}',
  'rain.summaryNone': 'Nothing this time. Be quicker next time!',
  'rain.leaderboard': 'Leaderboard',
  'rain.leaderboardEmpty': 'Nobody caught anything yet',
  'rain.leaderboardPartial': 'The leaderboard may be incomplete',
  'rain.close': 'OK',
  'rain.short.sold_out': 'Gone',
  'rain.short.already_grabbed': 'Got it',
  'rain.short.expired': 'Expired',
  'rain.short.not_yet': 'Not yet',
  'rain.short.other': 'Missed',
  'rain.invalid.packets': 'Packets must be between 1 and 1000',
  'rain.invalid.duration': 'Duration must be between 1 and 600 seconds',
  'rain.card': '{name} started a packet rain: {packets} packets',
  'rain.cardAnon': 'Packet rain: {packets} packets',
  'rain.cardEnded': 'Rain over · see results',
  'rain.cardUpcoming': 'Raining now',
  'rain.started': 'It is raining red packets!',
  'rain.from': 'Packet rain by {name}',
  'room.dialogTitle': 'Switch room',
  'room.label': 'Room name',
  'room.invalid': 'Letters, digits, - and _ only (up to 64)',
  'room.go': 'Go',
  'room.suggestions': 'Popular rooms',
  'sys.youGrabbed': 'You opened {name}’s red packet: {amount}',
  'sys.grabbedYours': '{name} opened your red packet',
  'sys.youGrabbedOwn': 'You opened your own red packet: {amount}',
  'stats.received': 'Received',
  'stats.sent': 'Sent',
  'stats.count': '{amount} ({n})',
  'sys.yourEmpty': 'Your red packet was emptied in {d}',
  'sys.yourExpired': 'Your red packet expired; the rest was refunded',
  'dur.ms': '{n} ms',
  'dur.s': '{n} s',
  'dur.ms_s': '{n} s',
  'dur.m': '{m} min {s} s',
  'dur.h': '{h} h {m} min',
  'common.close': 'Close',
  'common.cancel': 'Cancel',
  'error.generic': 'Something went wrong: {message}',
};

// Friendly messages for every stable error code of the wire contract.
export const ERROR_MESSAGES = {
  zh: {
    invalid_request: '请求无效，请检查输入',
    invalid_amount: '请输入正确的金额：大于 0，最多两位小数',
    invalid_count: '红包个数需在 1 到 1000 之间',
    uneven_total: '普通红包的总金额需要能被个数整除',
    share_too_small: '单个红包金额不可低于 ¥0.01',
    share_too_large: '单个红包金额不可超过 ¥200.00',
    total_too_large: '总金额太大：平均每个红包不可超过 ¥200.00',
    unauthorized: '身份已过期，正在重新进入',
    forbidden: '没有权限执行此操作',
    not_found: '红包不存在或已被删除',
    already_grabbed: '你已经领过这个红包了',
    sold_out: '手慢了，红包派完了',
    expired: '该红包已过期',
    not_yet: '红包还没开始，请稍候',
    insufficient_funds: '余额不足',
    rate_limited: '操作太频繁，请稍后再试',
    daily_limit: '今日发红包已达上限（北京时间 8 点，即 UTC 0 点重置）',
    room_rate_limited: '这个房间的红包太多了，请一分钟后再发',
    unavailable: '网络开小差了，请稍后再试',
  },
  en: {
    invalid_request: 'That request is not valid: please check your input',
    invalid_amount: 'Enter an amount above 0 with at most 2 decimals',
    invalid_count: 'The number of shares must be between 1 and 1000',
    uneven_total: 'For equal shares, the total must divide evenly by the number of shares',
    share_too_small: 'Each share must be at least ¥0.01',
    share_too_large: 'Each share can be at most ¥200.00',
    total_too_large: 'The total is too large: at most ¥200.00 per share on average',
    unauthorized: 'Your session expired: joining again',
    forbidden: 'You are not allowed to do that',
    not_found: 'That red packet does not exist',
    already_grabbed: 'You already opened this red packet',
    sold_out: 'Too slow: all the shares are gone',
    expired: 'This red packet has expired',
    not_yet: 'Not open yet: hold on a moment',
    insufficient_funds: 'Not enough balance',
    rate_limited: 'Too fast: please try again in a moment',
    daily_limit: 'You have reached today\'s sending limit (it resets at 00:00 UTC)',
    room_rate_limited: 'Too many red packets in this room: please try again in a minute',
    unavailable: 'The service is unavailable: please try again',
  },
};

const DICTS = { zh, en };
const listeners = new Set();
let current = 'zh';

function storage() {
  try { return globalThis.localStorage ?? null; } catch { return null; }
}

/** Pick the initial language: ?lang=, saved choice, then the browser's. */
export function detectLang({ search = '', saved = storage()?.getItem(STORAGE_KEY), languages = globalThis.navigator?.languages ?? [] } = {}) {
  const fromUrl = new URLSearchParams(search).get('lang');
  if (LANGS.includes(fromUrl)) return fromUrl;
  if (LANGS.includes(saved)) return saved;
  for (const l of languages) {
    const base = String(l).toLowerCase().slice(0, 2);
    if (base === 'zh') return 'zh';
    if (base === 'en') return 'en';
  }
  return 'zh';
}

export function getLang() { return current; }

export function setLang(lang, { persist = true } = {}) {
  if (!LANGS.includes(lang)) return;
  current = lang;
  if (persist) { try { storage()?.setItem(STORAGE_KEY, lang); } catch { /* private mode */ } }
  if (globalThis.document) {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    applyTranslations(document);
  }
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

/** Translate a key, substituting {placeholders}. */
export function t(key, vars = {}, lang = current) {
  const s = DICTS[lang]?.[key] ?? DICTS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** A friendly message for a wire error; falls back to the server's message. */
export function errorMessage(err, lang = current) {
  const code = err?.code ?? '';
  const msg = ERROR_MESSAGES[lang]?.[code];
  if (msg) return msg;
  if (err?.message) return String(err.message);
  return t('error.generic', { message: code || '?' }, lang);
}

export function applyTranslations(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

/** "13:05" (today) or "3/12 13:05". */
export function formatTime(ms, { seconds = false, now = Date.now() } = {}) {
  if (!Number.isFinite(ms)) return '';
  const d = new Date(ms);
  const locale = current === 'zh' ? 'zh-CN' : 'en-GB';
  const time = d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', ...(seconds ? { second: '2-digit' } : {}), hour12: false });
  const n = new Date(now);
  if (d.toDateString() === n.toDateString()) return time;
  return `${d.getMonth() + 1}/${d.getDate()} ${time}`;
}

/** 850 → "0.9 秒", 15000 → "15 秒", 75000 → "1 分 15 秒". */
export function formatDuration(ms, lang = current) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 10000) {
    const tenths = Math.max(1, Math.round(ms / 100));
    return t('dur.ms_s', { n: `${Math.trunc(tenths / 10)}.${tenths % 10}` }, lang);
  }
  const s = Math.round(ms / 1000);
  if (s < 60) return t('dur.s', { n: s }, lang);
  if (s < 3600) return t('dur.m', { m: Math.trunc(s / 60), s: s % 60 }, lang);
  return t('dur.h', { h: Math.trunc(s / 3600), m: Math.trunc((s % 3600) / 60) }, lang);
}

export const __test = { DICTS };
