# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The notifier's message catalogue: every sentence a receiver reads, per language.

Messages are `str.format` templates whose fields are filled by streams.notify.wording
with values already made inert and formatted for the locale (Babel). The English
ones say what the detectors' own summaries and hints say (tests compare them), so
a receiver reads the same whichever language it has. Runbooks are translated
gettext-style, keyed by the English text they translate: a runbook that changed
in detectors.alerts is shown as it is, never replaced by a stale translation.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Language = Literal["zh-CN", "en"]
LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)
LOCALES: Final[dict[Language, str]] = {"en": "en", "zh-CN": "zh_Hans_CN"}
"""The Babel (CLDR) locale that formats each language's numbers and lists."""
LIST_STYLES: Final[dict[Language, str]] = {"en": "unit", "zh-CN": "standard"}
"""CLDR list styles: "a, b, c" in English (as the detectors write), "a、b和c" in Chinese."""

MESSAGES: Final[dict[Language, dict[str, str]]] = {
    "en": {
        # The message around the alerts.
        "title": "livewatch: {room} ({counts})",
        "count.firing": "{n} firing",
        "count.resolved": "{n} resolved",
        "count.separator": ", ",
        "headline.firing": "{severity} {alert} in {where}",
        "headline.resolved": "RESOLVED {alert} in {where}",
        "severity.critical": "CRITICAL",
        "severity.warning": "WARNING",
        "alert": "{code}",
        "since": "since {time}",
        "lasted": "after {minutes} min (since {time})",
        "closed": "the room closed",
        "ended": "the stream ended",
        "reason": "resolved: {reason}",
        "hint": "hint: {text}",
        "samples": "samples: {samples}",
        "accounts": "accounts: {accounts}",
        "runbook": "runbook: {text}",
        "dashboard": "Room dashboard",
        "more": "…and {n} more alerts",
        "console.lasted": " (lasted {minutes} min)",
        # Summaries, from the alerts' details (detectors/cliff.py, spam.py, slo.py).
        "cliff.fell": "traffic fell {drop} within {within}s: {signals}",
        "cliff.silent": "room went silent within {within}s: {signals}",
        "cliff.separator": "; ",
        "cliff.online": "online viewers {observed} vs {expected} expected",
        "cliff.entries": "entries {observed}/{window}s vs {expected} expected",
        "cliff.activity": "events {observed}/{window}s vs {expected} expected",
        "spam": (
            "chat flood: {messages} spam messages in {window}s from {accounts} accounts ({kinds})"
        ),
        "latency.burn": (
            "{share} of latency samples in {region} over {slo} ms (burn {burn}x over {window} min)"
        ),
        "latency.level": (
            "{share} of latency samples in {region} over {slo} ms for {window} min "
            "(at least {least} in every {part} s)"
        ),
        "stall.burn": "stalls took {share} of watch time (burn {burn}x over {window} min)",
        # Hints (streams/core/watch.py: detectors.cliff.qoe_hint, channel_hints, ebb_hint).
        "hint.qoe": (
            "QoE degrading too: latency p95 {p95} s, stall ratio {stall} over the last minute"
        ),
        "hint.channel": (
            "traffic source '{channel}' collapsed: {before} of entries before, "
            "{now} in the last {recent}s"
        ),
        "hint.ebb": (
            "a promotion peak of {peak} viewers at {at} UTC is ebbing (half-life {half} min, "
            "{floor}): an ebb explains a slow fall, not one this fast"
        ),
        "ebb.ratio": "floor {ratio}x the level before it",
        "ebb.nobody": "floor {floor} viewers, where there was no audience before",
        "channel": "{code}",
    },
    "zh-CN": {
        "title": "livewatch：{room}（{counts}）",
        "count.firing": "告警中 {n} 条",
        "count.resolved": "已恢复 {n} 条",
        "count.separator": "，",
        "headline.firing": "【{severity}】{alert} · 直播间 {where}",
        "headline.resolved": "【已恢复】{alert} · 直播间 {where}",
        "severity.critical": "严重",
        "severity.warning": "警告",
        "alert": "{name}（{code}）",
        "since": "开始于 {time}",
        "lasted": "持续 {minutes} 分钟（开始于 {time}）",
        "closed": "直播间已下播",
        "ended": "直播已结束",
        "reason": "恢复原因：{reason}",
        "hint": "提示：{text}",
        "samples": "弹幕样本：{samples}",
        "accounts": "账号：{accounts}",
        "runbook": "处置建议：{text}",
        "dashboard": "直播间仪表板",
        "more": "……另有 {n} 条告警",
        "console.lasted": "（持续 {minutes} 分钟）",
        "cliff.fell": "流量在 {within} 秒内下跌 {drop}：{signals}",
        "cliff.silent": "直播间在 {within} 秒内沉寂：{signals}",
        "cliff.separator": "；",
        "cliff.online": "在线人数 {observed}，预期 {expected}",
        "cliff.entries": "进房 {observed} 人次/{window} 秒，预期 {expected}",
        "cliff.activity": "事件 {observed} 条/{window} 秒，预期 {expected}",
        "spam": "弹幕刷屏：{window} 秒内 {messages} 条垃圾弹幕，来自 {accounts} 个账号（{kinds}）",
        "latency.burn": (
            "{region} 有 {share} 的延迟样本超过 {slo} 毫秒"
            "（{window} 分钟内错误预算消耗速率为 {burn} 倍）"
        ),
        "latency.level": (
            "{region} 连续 {window} 分钟有 {share} 的延迟样本超过 {slo} 毫秒"
            "（每 {part} 秒至少 {least}）"
        ),
        "stall.burn": "卡顿占观看时长的 {share}（{window} 分钟内错误预算消耗速率为 {burn} 倍）",
        "hint.qoe": "播放质量也在变差：最近一分钟延迟 p95 为 {p95} 秒，卡顿率 {stall}",
        "hint.channel": (
            "流量来源「{channel}」断流：此前占进房的 {before}，最近 {recent} 秒只占 {now}"
        ),
        "hint.ebb": (
            "UTC {at} 的促销高峰（{peak} 人）正在回落（半衰期 {half} 分钟，{floor}）："
            "回落只能解释缓慢的下跌，解释不了这么快的下跌"
        ),
        "ebb.ratio": "低点为促销前水平的 {ratio} 倍",
        "ebb.nobody": "低点 {floor} 人，促销前几乎没有观众",
        "channel": "{name}（{code}）",
    },
}

NAMES: Final[dict[Language, dict[str, str]]] = {
    # What the codes in alerts are called: alert types, spam kinds, traffic channels.
    # English keeps the codes themselves (they are what silences and routes match).
    "en": {},
    "zh-CN": {
        "traffic_cliff": "流量断崖",
        "spam_flood": "弹幕刷屏",
        "latency_slo": "延迟 SLO",
        "stall_slo": "卡顿 SLO",
        "repeated_by_few_accounts": "少数账号反复刷同一内容",
        "repeated_contact_ads": "多账号重复发联系方式广告",
        "repeated_by_fresh_accounts": "新进房账号重复刷屏",
        "fresh_accounts_burst": "新进房账号集中刷屏",
        "contact_ads": "联系方式广告",
        "per_user_flood": "单账号高频刷屏",
        "feed": "推荐流",
        "follow": "关注",
        "search": "搜索",
        "ad": "广告投放",
        "share": "分享",
        "other": "其他",
        "unknown": "未知",
    },
}

SPAM_KINDS: Final = (
    "repeated_by_few_accounts",
    "repeated_contact_ads",
    "repeated_by_fresh_accounts",
    "fresh_accounts_burst",
    "contact_ads",
    "per_user_flood",
)
"""The flood kinds of detectors/spam.py the catalogue knows."""

RUNBOOKS: Final[dict[Language, dict[str, str]]] = {
    # English text (detectors.alerts.RUNBOOKS) -> its translation.
    "en": {},
    "zh-CN": {
        (
            "Check the stream is live and the encoder/CDN healthy; compare traffic sources "
            "(a feed cut shows as one source collapsing); no events at all means the stream or "
            "the room's event ingest died; if QoE fell too, treat as an outage."
        ): (
            "确认直播流在线、编码器和 CDN 正常；对比各流量来源（推荐流被切断表现为单一来源断流）；"
            "完全没有事件说明直播流或直播间的事件接入中断；如果播放质量也下降，按故障处理。"
        ),
        (
            "Mute the listed accounts (an action was emitted), consider slow or unique-chat "
            "mode, and block the sample phrases or contact ids."
        ): (
            "禁言列出的账号（已发出禁言动作），考虑开启慢速或防重复弹幕模式，"
            "并屏蔽样本中的话术或联系方式。"
        ),
        (
            "Look at the region's CDN / edge nodes and the ingest path; compare regions on the "
            "QoE dashboard; fail over the edge if one region burns alone."
        ): (
            "检查该地区的 CDN / 边缘节点和推流链路；在 QoE 仪表板上对比各地区；"
            "如果只有这一个地区在消耗错误预算，切换边缘节点。"
        ),
        (
            "Check bitrate ladder and CDN health for the room; a stall burst with a latency burn "
            "in one region points at the edge, across regions at the origin or encoder."
        ): (
            "检查直播间的码率档位和 CDN 健康状况；卡顿激增且单一地区延迟超标指向边缘节点，"
            "多个地区同时超标则指向源站或编码器。"
        ),
    },
}
