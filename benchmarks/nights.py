# ruff: noqa: RUF001, E501  (look-alike characters are what its flooders use; long JSON templates)
"""Independent test nights for livewatch.

Builds whole "nights" of live-commerce rooms from a world model written without
looking at livewatch's own simulator or detectors, so detectors are judged on
data they were not designed around.  Each night is an event log (JSON Lines,
sorted by ts, fields per docs/events.md), a labels file (incidents that should
alert) and a ``<labels stem>.negatives.json`` file (planted hard negatives that
should not).

    python -m benchmarks.nights --seed 1 --night double-eleven \
        --out night.jsonl --labels-out labels.json

Pure Python + numpy, deterministic per (night, seed).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEC = 1000
MIN = 60 * SEC
CHANNELS = ("feed", "follow", "search", "ad", "share", "other")
TYPE_RANK = {"join": 0, "latency": 1, "stall": 2, "danmaku": 3, "order": 4, "leave": 5}
REGION_POOL = [
    ("cn-east", 175),
    ("cn-north", 200),
    ("cn-south", 215),
    ("cn-central", 240),
    ("cn-west", 290),
    ("hk-sea", 265),
    ("overseas", 335),
]
CATEGORIES = ("clothing", "beauty", "food", "digital", "home")

# --------------------------------------------------------------------------- vocabulary

GREET = [
    "来了来了",
    "主播好",
    "主播晚上好",
    "晚上好呀",
    "打卡",
    "来啦",
    "又来了",
    "报到",
    "第一次来",
    "刚进来",
    "刷到就进来了",
    "老粉来了",
    "每天都来",
    "下班了来看看",
    "来了宝子",
    "姐妹们晚上好",
    "hello",
    "嗨嗨",
    "来捧场",
    "进来看看",
    "晚上好",
    "来了",
    "签到",
    "今天好早",
]
REACT = [
    "好看",
    "好美",
    "绝了",
    "爱了爱了",
    "太划算了",
    "已拍",
    "拍了",
    "买了",
    "抢到了",
    "没抢到",
    "手慢了",
    "加库存",
    "再上点库存吧",
    "求返场",
    "好便宜",
    "心动了",
    "冲",
    "冲冲冲",
    "666",
    "牛",
    "真不错",
    "回购好几次了",
    "上次买的很好用",
    "已下单",
    "主播辛苦了",
    "主播喝口水",
    "笑死",
    "真的假的",
    "贵了",
    "有点贵",
    "上次更便宜",
    "姐妹们冲",
    "主播好漂亮",
    "主播声音好好听",
    "背景音乐叫什么",
    "讲慢点",
    "没听清",
    "等等我",
    "库存太少了吧",
    "秒没",
    "我也想要",
    "蹲一个",
    "蹲返场",
    "给我留一个",
    "刚拍完",
    "付款了",
    "还能改颜色吗",
    "好耶",
    "可以可以",
    "不错不错",
    "这个我有",
    "去年买过",
    "家里人都说好",
    "种草了",
    "拔草了",
    "理性消费",
    "钱包空了",
    "这价格可以",
    "助理好可爱",
    "主播今天妆好看",
    "讲得好清楚",
    "支持",
    "点赞了",
    "关注了",
    "已关注",
]
GENERIC_Q = (
    [
        "几号链接",
        "什么时候发货",
        "包邮吗",
        "能再讲一下吗",
        "是正品吗",
        "赠品还有吗",
        "价格多少",
        "运费险有吗",
        "能退吗",
        "还有库存吗",
        "下一个上什么",
        "今晚有福袋吗",
        "什么时候抽奖",
        "能便宜点吗",
        "福袋什么时候开",
        "拍了什么时候到",
        "可以开发票吗",
        "偏远地区发吗",
        "主播手里的是哪个",
        "刚才那个还会上吗",
    ]
    + [f"{n}号还有吗" for n in (1, 2, 3, 5, 6, 8, 12)]
    + [f"讲下{n}号" for n in (2, 3, 4, 7, 9, 11, 15, 21)]
)
PRODUCT_Q = {
    "clothing": [
        "有没有大码",
        "显瘦吗",
        "会起球吗",
        "面料是什么",
        "掉色吗",
        "能机洗吗",
        "模特穿的什么码",
        "腰围多少",
        "裤长多少",
        "秋天穿热不热",
        "黑色还有吗",
        "有没有S码",
        "会缩水吗",
        "透不透",
    ],
    "beauty": [
        "敏感肌能用吗",
        "油皮适合吗",
        "孕妇能用吗",
        "保质期到什么时候",
        "多少毫升",
        "和小样一样吗",
        "有没有赠品",
        "会不会搓泥",
        "持妆多久",
        "是什么色号",
        "黄皮适合哪个色号",
        "能带上飞机吗",
        "干皮能用吗",
        "有香味吗",
    ],
    "food": [
        "保质期多久",
        "甜不甜",
        "辣吗",
        "小孩能吃吗",
        "一箱几包",
        "需要冷藏吗",
        "产地是哪里",
        "热量高吗",
        "配料表干净吗",
        "几天能到",
        "会不会化",
        "控糖能吃吗",
        "一包多少克",
        "咸不咸",
    ],
    "digital": [
        "支持快充吗",
        "续航多久",
        "有几个颜色",
        "保修多久",
        "能连苹果吗",
        "是国行吗",
        "内存多大",
        "降噪效果怎么样",
        "防水吗",
        "跟上一代有啥区别",
        "送充电器吗",
        "能分期吗",
        "重不重",
        "打游戏卡吗",
    ],
    "home": [
        "尺寸多大",
        "好清洗吗",
        "能放洗碗机吗",
        "是什么材质",
        "有味道吗",
        "承重多少",
        "需要安装吗",
        "有几个颜色",
        "会不会生锈",
        "能用多久",
        "送货上门吗",
        "包安装吗",
        "占地方吗",
        "静音吗",
    ],
}
LAUGH = [
    "哈哈哈",
    "哈哈哈哈",
    "哈哈",
    "哈哈哈哈哈哈",
    "哈哈哈哈哈哈哈哈哈",
    "hhh",
    "hhhhh",
    "233",
    "2333",
    "笑死我了",
    "笑不活了",
    "😂",
    "😂😂",
    "😂😂😂",
    "哈哈哈哈哈哈哈哈哈哈哈哈",
    "hahaha",
    "嘿嘿",
]
QMARK = [
    "?",
    "??",
    "???",
    "？",
    "？？",
    "？？？",
    "？？？？？",
    "啊？",
    "嗯？",
    "什么？",
    "???????",
]
EMOJI_MSG = [
    "👍",
    "❤️",
    "🔥🔥🔥",
    "🌹",
    "🌹🌹",
    "👏👏",
    "🥰",
    "💯",
    "😍😍",
    "🙏",
    "💪",
    "🎉",
    "[赞]",
    "[玫瑰]",
    "[比心]",
    "[呲牙]",
    "[鼓掌]",
    "[爱心]",
    "[捂脸]",
    "[666]",
    "[赞][赞][赞]",
    "❤️❤️❤️",
    "👍👍",
    "[玫瑰][玫瑰]",
    "🔥",
    "[比心][比心]",
]
LAG = [
    "卡了",
    "好卡",
    "卡卡的",
    "画面卡住了",
    "怎么一直转圈",
    "声音画面不同步",
    "黑屏了",
    "又卡了",
    "是我网不好吗",
    "卡死了",
    "延迟好高",
    "画面糊了",
    "主播卡了",
    "一卡一卡的",
    "刷新一下好了",
]
SUFFIX = [
    "",
    "!",
    "！",
    "！！",
    "~",
    "啊",
    "呀",
    "哈",
    "👍",
    "❤️",
    "🌹",
    "😂",
    "🔥",
    "[比心]",
    "[赞]",
    "。",
]
SUFFIX_P = np.array([80, 3, 3, 1.5, 2, 1.5, 1.5, 1, 1, 1, 0.8, 1, 0.8, 0.6, 0.6, 0.6])
SUFFIX_P = SUFFIX_P / SUFFIX_P.sum()

HYPE = [
    ("1", ["11", "111", "扣1", "1111"]),
    ("想要", ["想要想要", "要", "我想要", "想要！"]),
    ("666", ["6666", "66666", "6"]),
    ("冲", ["冲冲冲", "冲！", "冲啊"]),
    ("已拍", ["拍了", "已拍已拍", "已付款"]),
    ("来了", ["来了来了", "来啦", "来了！"]),
    ("好", ["好的", "好好好"]),
    ("爱了", ["爱了爱了", "❤️"]),
    ("上链接", ["快上链接", "上链接！", "上链接上链接"]),
    ("加库存", ["加库存！", "求加库存", "加加加"]),
    ("2", ["22", "222", "扣2"]),
    ("要要要", ["要", "要要"]),
]

NEWCOMER_TOPICS = {
    "size": [
        "尺码怎么选",
        "我一米六五穿什么码",
        "偏大还是偏小",
        "120斤选哪个码",
        "码数标准吗",
        "平时穿M这个拿几码",
        "170 140斤穿多大",
    ],
    "ship": [
        "什么时候发货",
        "今天拍明天能发吗",
        "几天能到",
        "发什么快递",
        "新疆包邮吗",
        "偏远地区发不发",
        "今天下单几号到",
    ],
    "price": [
        "现在下单什么价",
        "直播间价格是多少",
        "到手价多少",
        "比平时便宜多少",
        "买两件有折扣不",
        "券在哪里领",
        "现在拍是活动价吗",
    ],
    "stock": [
        "白色还有货吗",
        "还有库存吗",
        "黑色断码了吗",
        "卡其色还有没",
        "补货了吗",
        "还能拍到吗",
    ],
    "real": ["是正品吗", "有防伪码吗", "专柜同款吗", "能验货吗", "是旗舰店发货吗"],
    "which": [
        "在哪个链接",
        "几号链接",
        "小黄车里是哪个",
        "刚进来 讲的是哪个",
        "主播手上是几号",
        "现在讲的是第几个",
    ],
}
Q_PREFIX = ["", "", "", "", "请问", "主播", "主播 ", "姐妹们", "问下", "@主播 "]
Q_SUFFIX = ["", "", "？", "?", "??", "啊", "呀", "呢", "？？", "。", "主播", " 急"]

FRIEND = [
    "来捧场了",
    "支持一下",
    "加油加油",
    "给你点赞",
    "冲鸭",
    "来了姐妹",
    "支持支持",
    "主播加油",
    "😄",
    "[比心]",
    "第一次看你直播",
    "好看",
    "来晚了",
    "帮你点点赞",
    "哈哈哈你好紧张",
    "声音小了点",
    "我也来了",
    "可以啊",
    "挺专业的",
    "[玫瑰]",
    "下播请吃饭",
    "稳住",
]

FAN_TEMPLATES = [
    ("same", "主播看看我呀"),
    ("same", "🌹🌹🌹"),
    ("same", "主播好美"),
    ("count", "求讲解{n}号链接"),
    ("count", "第{n}次求返场"),
    ("same", "家人们点点关注 主播人超好"),
    ("same", "等了好久了 快上架吧"),
    ("count", "{n}号{n}号 讲讲{n}号"),
    ("same", "[比心][比心]主播爱你"),
    ("same", "新来的家人点个关注不迷路"),
]

SPAM_TEMPLATES = [
    "同款工厂价拿货，{wxw} {wx}",
    "想要低价同款的姐妹加{wxw}{wx} 一件代发",
    "扣扣{qq} 进群送无门槛{n}元券",
    "别在这买贵了 搜店铺{shop} 同款便宜一半",
    "兼职日结{n}+ 手机就能做 联系{wxw}{wx}",
    "免费领同款小样，戳{link}",
    "今晚{shop}全场{d}折清仓 👉{link}",
    "私我拿内部价 q{qq}",
    "{shop}尾货{d}折起，{wxw}：{wx}",
    "看主页，{n}个名额 免费送 {link}",
]
WXW = ["V", "v", "薇", "威", "vx", "VX", "wx", "➕V", "+v", "卫星", "绿泡泡", "微"]
SHOP_WORDS = ["好物严选", "工厂直营", "尾货清仓", "品牌折扣", "优品仓", "源头好货", "折扣工坊"]
SEPARATORS = ["·", "~", ".", " ", "|"]
SPAM_TAIL = ["", "！", "!!", "~~", "🎁", "🔥", "💰", "👉", "🧧", "✨", "。", "❗", "💯", "🉐"]
CYRILLIC = str.maketrans(
    {
        "a": "а",
        "e": "е",
        "o": "о",
        "p": "р",
        "c": "с",
        "x": "х",
        "y": "у",
        "i": "і",
        "A": "А",
        "B": "В",
        "E": "Е",
        "K": "К",
        "M": "М",
        "H": "Н",
        "O": "О",
        "P": "Р",
        "C": "С",
        "T": "Т",
        "X": "Х",
    }
)
ALNUM = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

# --------------------------------------------------------------------------- night specs

NIGHTS: dict[str, dict] = {
    "quiet-weeknight": dict(
        date=(2025, 10, 14, 20, 30),
        minutes=(60, 72),
        n_regions=(3, 4),
        sizes=[
            (18000, 24000, 1, 1),
            (1500, 3500, 1, 1),
            (150, 1100, 2, 3),
            (30, 150, 2, 2),
            (5, 19, 2, 3),
        ],
        opening_p=0.6,
        promos=(1, 2),
        chat_scale=(0.7, 1.1),
        order_scale=0.8,
        outage_to_end_p=0.5,
        incidents=[
            ("stream_outage", 1, 300, None),
            ("feed_cut", 1, 300, None),
            ("template_flood", 1, 30, 300),
            ("region_degradation", 1, 300, None),
        ],
        negatives=[
            ("latency_spike", 2, 100, None),
            ("single_account", 1, 100, None),
            ("newcomer_questions", 1, 100, None),
            ("small_room_noise", 2, 0, 20),
            ("hype_burst", 1, 15000, None),
        ],
    ),
    "double-eleven": dict(
        date=(2025, 11, 10, 23, 25),
        minutes=(62, 75),
        n_regions=(4, 6),
        sizes=[
            (21000, 27000, 1, 1),
            (5500, 7500, 1, 1),
            (900, 1800, 1, 1),
            (250, 900, 3, 3),
            (40, 250, 3, 4),
            (5, 19, 3, 4),
        ],
        opening_p=0.75,
        promos=(5, 7),
        chat_scale=(0.9, 1.3),
        order_scale=1.3,
        outage_to_end_p=0.0,
        incidents=[
            ("mass_exit", 1, 20000, None),
            ("stream_outage", 1, 250, 3000),
            ("feed_cut", 1, 3000, 20000),
            ("template_flood", 1, 20000, None),
            ("obfuscated_flood", 1, 40, 300),
            ("region_degradation", 1, 1000, None),
            ("stall_storm", 1, 250, None),
        ],
        negatives=[
            ("hype_burst", 4, 1200, None),
            ("newcomer_questions", 3, 250, None),
            ("single_account", 1, 250, None),
            ("latency_spike", 1, 250, None),
            ("small_room_noise", 2, 0, 20),
        ],
    ),
    "chat-heavy": dict(
        date=(2025, 9, 20, 21, 0),
        minutes=(65, 80),
        n_regions=(3, 5),
        sizes=[
            (20000, 27000, 1, 1),
            (1800, 3500, 1, 1),
            (700, 1500, 2, 2),
            (100, 500, 2, 3),
            (30, 100, 2, 2),
            (5, 19, 2, 3),
        ],
        opening_p=0.6,
        promos=(2, 3),
        chat_scale=(2.0, 3.0),
        order_scale=1.0,
        outage_to_end_p=0.0,
        incidents=[
            ("template_flood", 1, 30, 300),
            ("template_flood", 1, 15000, None),
            ("obfuscated_flood", 1, 700, 4000),
            ("obfuscated_flood", 1, 100, 500),
            ("mass_exit", 1, 700, 4000),
        ],
        negatives=[
            ("hype_burst", 6, 700, None),
            ("newcomer_questions", 4, 100, None),
            ("single_account", 2, 100, None),
            ("small_room_noise", 3, 0, 20),
            ("latency_spike", 1, 100, None),
        ],
    ),
    "qoe-troubles": dict(
        date=(2025, 8, 5, 20, 0),
        minutes=(65, 85),
        n_regions=(4, 6),
        sizes=[
            (20000, 28000, 1, 1),
            (5500, 8000, 1, 1),
            (900, 2400, 2, 2),
            (150, 800, 2, 3),
            (30, 150, 1, 2),
            (5, 19, 2, 2),
        ],
        opening_p=0.6,
        promos=(1, 2),
        chat_scale=(0.8, 1.2),
        order_scale=0.9,
        outage_to_end_p=0.3,
        incidents=[
            ("region_degradation", 3, 300, None),
            ("stall_storm", 2, 300, None),
            ("stream_outage", 1, 900, None),
            ("feed_cut", 1, 150, 3000),
        ],
        negatives=[
            ("latency_spike", 5, 150, None),
            ("hype_burst", 1, 5000, None),
            ("single_account", 1, 150, None),
            ("newcomer_questions", 1, 150, None),
            ("small_room_noise", 1, 0, 20),
        ],
    ),
}

INCIDENT_ALERT = {
    "stream_outage": "traffic_cliff",
    "feed_cut": "traffic_cliff",
    "mass_exit": "traffic_cliff",
    "template_flood": "spam_flood",
    "obfuscated_flood": "spam_flood",
    "region_degradation": "latency_slo",
    "stall_storm": "stall_slo",
}


def nights() -> list[str]:
    return list(NIGHTS)


# --------------------------------------------------------------------------- world objects


@dataclass
class Room:
    idx: int
    rid: str
    size: float
    start: int  # s from night start
    category: str
    region_w: np.ndarray
    opening: tuple | None = None  # (A, tau_s)
    ramp_s: float = 20.0
    stay_med: float = 240.0
    stay_sigma: float = 1.2
    loyal: float = 0.15
    loyal_xm: float = 480.0
    loyal_alpha: float = 1.4
    channel_p: np.ndarray = None
    chat_c: float = 0.3
    conv: float = 0.003
    price: float = 80.0
    report_frac: float = 1.0
    stall_rate: float = 1 / 2400.0  # per viewer-second
    lanes: dict = field(default_factory=lambda: {"traffic": [], "chat": [], "qoe": []})
    items: list = field(default_factory=list)

    def free(self, lanes, s, e, margin):
        for ln in lanes:
            for a, b in self.lanes[ln]:
                if s < b + margin and e > a - margin:
                    return False
        return True

    def take(self, lanes, s, e):
        for ln in lanes:
            self.lanes[ln].append((s, e))


def place(room, rng, lanes, dur, lo, hi, reserve=None, margin=60, tries=60):
    """Random start s in [lo, hi-dur] with [s, s+reserve) free in the lanes."""
    reserve = dur if reserve is None else reserve
    if hi - dur <= lo:
        return None
    for _ in range(tries):
        s = int(rng.uniform(lo, hi - dur))
        if room.free(lanes, s, s + reserve, margin):
            room.take(lanes, s, s + reserve)
            return s
    return None


# --------------------------------------------------------------------------- night construction


def _make_rooms(cfg, rng, S, n_regions):
    sizes = []
    for lo, hi, clo, chi in cfg["sizes"]:
        for _ in range(int(rng.integers(clo, chi + 1))):
            sizes.append(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    rng.shuffle(sizes)
    rooms = []
    used = set()
    for i, n in enumerate(sizes):
        plat = rng.choice(["dy", "tb", "tts", "ks"], p=[0.5, 0.25, 0.15, 0.1])
        while True:
            rid = f"{plat}-{int(rng.integers(10**8, 10**10))}"
            if rid not in used:
                used.add(rid)
                break
        start = int(rng.uniform(0, 90)) if rng.random() < 0.6 else int(rng.uniform(90, 12 * 60))
        rw = rng.dirichlet(np.full(n_regions, 1.6)) * 0.85 + 0.15 / n_regions
        room = Room(
            idx=i, rid=rid, size=n, start=start, category=str(rng.choice(CATEGORIES)), region_w=rw
        )
        if n >= 30 and rng.random() < cfg["opening_p"]:
            room.opening = (float(rng.uniform(0.6, 1.6)), float(rng.uniform(120, 270)))
            room.ramp_s = float(rng.uniform(8, 25))
        else:
            room.ramp_s = float(rng.uniform(90, 300))
        room.stay_med = float(rng.uniform(130, 330))
        room.stay_sigma = float(rng.uniform(1.0, 1.35))
        room.loyal = float(rng.uniform(0.06, 0.16))
        room.loyal_xm = float(rng.uniform(360, 900))
        room.loyal_alpha = float(rng.uniform(1.2, 1.8))
        feed = rng.uniform(0.52, 0.74)
        rest = rng.dirichlet([3.0, 1.6, 1.2, 1.0, 0.5]) * (1 - feed)
        room.channel_p = np.concatenate([[feed], rest])
        room.chat_c = float(rng.uniform(*cfg["chat_scale"]) * rng.lognormal(0, 0.35) * 0.3)
        room.conv = float(cfg["order_scale"] * rng.lognormal(np.log(0.0025), 0.5))
        room.price = float(rng.lognormal(np.log(85), 0.8))
        room.report_frac = float(rng.uniform(0.08, 0.12)) if n > 5000 else 1.0
        room.stall_rate = 1.0 / float(rng.uniform(1800, 5400))
        rooms.append(room)
    return rooms


def _plan(cfg, rooms, rng, S):
    # promotions first (they shape traffic), then incidents, then negatives

    def cands(lo, hi, extra=lambda r: True):
        out = [r for r in rooms if r.size >= lo and (hi is None or r.size < hi) and extra(r)]
        rng.shuffle(out)
        return out

    def earliest(r, after_open=True):
        e = r.start + 60
        if r.opening and after_open:
            e = r.start + int(3 * r.opening[1])
        return e

    # openings occupy the traffic lane
    for r in rooms:
        if r.opening:
            r.take(["traffic"], r.start, r.start + int(3 * r.opening[1]))

    # incidents first so they get their slots; promos avoid them later
    for kind, count, lo, hi in cfg["incidents"]:
        for _ in range(count):
            done = False
            for r in cands(lo, hi):
                if _plan_incident(kind, r, rng, S, cfg, earliest(r)):
                    done = True
                    break
            if not done:
                print(f"warning: could not place {kind}", file=sys.stderr)

    n_promo = int(rng.integers(cfg["promos"][0], cfg["promos"][1] + 1))
    placed = 0
    for _ in range(n_promo * 6):
        if placed >= n_promo:
            break
        pool = [r for r in rooms if r.size >= 30]
        w = np.log(np.array([r.size for r in pool]))
        r = pool[int(rng.choice(len(pool), p=w / w.sum()))]
        D = int(rng.uniform(5, 15) * 60)
        h = float(rng.uniform(150, 360))
        P = float(rng.uniform(1.5, 4.0) if r.size < 10000 else rng.uniform(1.5, 2.5))
        ramp = float(rng.uniform(30, 120))
        s = place(
            r,
            rng,
            ["traffic"],
            D,
            earliest(r) + 120,
            S - D - 240,
            reserve=min(int(D + 3 * h), S),
            margin=90,
        )
        if s is not None:
            r.items.append(dict(kind="promo", s=s, D=D, h=h, P=P, ramp=ramp))
            placed += 1

    for kind, count, lo, hi in cfg["negatives"]:
        for _ in range(count):
            done = False
            for r in cands(lo, hi):
                if _plan_negative(kind, r, rng, S):
                    done = True
                    break
            if not done:
                print(f"warning: could not place {kind}", file=sys.stderr)


def _plan_incident(kind, r, rng, S, cfg, early):
    all_lanes = ["traffic", "chat", "qoe"]
    if kind == "stream_outage":
        if rng.random() < cfg.get("outage_to_end_p", 0.3):
            lo = max(early + 600, int(S * 0.6))
            s = place(r, rng, all_lanes, 300, lo, S - 240, reserve=S, margin=120)
            if s is None:
                return False
            r.items.append(dict(kind=kind, s=s, e=S, to_end=True))
        else:
            d = int(rng.uniform(3, 10) * 60)
            s = place(r, rng, all_lanes, d, early + 600, S - 300, reserve=d + 300, margin=120)
            if s is None:
                return False
            r.items.append(dict(kind=kind, s=s, e=s + d, to_end=False))
        return True
    if kind == "feed_cut":
        to_end = rng.random() < 0.3
        d = int(rng.uniform(6, 20) * 60)
        if to_end:
            s = place(
                r,
                rng,
                ["traffic"],
                400,
                max(early + 600, int(S * 0.55)),
                S - 180,
                reserve=S,
                margin=120,
            )
            e = S
        else:
            s = place(r, rng, ["traffic"], d, early + 600, S - 240, reserve=d + 300, margin=120)
            e = None if s is None else s + d
        if s is None:
            return False
        r.items.append(dict(kind=kind, s=s, e=e, to_end=to_end))
        return True
    if kind == "mass_exit":
        s = place(r, rng, ["traffic"], 60, early + 600, S - 600, reserve=20 * 60, margin=180)
        if s is None:
            return False
        r.items.append(dict(kind=kind, s=s, frac=float(rng.uniform(0.4, 0.7))))
        return True
    if kind in ("template_flood", "obfuscated_flood"):
        F = int(rng.uniform(60, 240))
        s = place(r, rng, ["chat"], F, r.start + 240, S - 120, reserve=F + 90, margin=120)
        if s is None:
            return False
        r.items.append(dict(kind=kind, s=s, F=F, n=int(rng.integers(15, 41))))
        return True
    if kind == "region_degradation":
        d = int(rng.uniform(5, 20) * 60)
        s = place(r, rng, ["qoe"], d, r.start + 300, S - 120, margin=180)
        if s is None:
            return False
        reg = int(rng.choice(len(r.region_w), p=r.region_w / r.region_w.sum()))
        if r.region_w[reg] < 0.12:
            reg = int(np.argmax(r.region_w))
        r.items.append(
            dict(
                kind=kind,
                s=s,
                e=s + d,
                region=reg,
                q=float(rng.uniform(0.38, 0.62)),
                med=float(rng.uniform(850, 1600)),
            )
        )
        return True
    if kind == "stall_storm":
        d = int(rng.uniform(3, 8) * 60)
        s = place(r, rng, ["qoe"], d, r.start + 300, S - 120, margin=180)
        if s is None:
            return False
        reg = int(np.argmax(r.region_w)) if rng.random() < 0.35 else None
        r.items.append(
            dict(
                kind=kind,
                s=s,
                e=s + d,
                region=reg,
                frac=float(rng.uniform(0.5, 0.85)),
                every=float(rng.uniform(20, 60)),
            )
        )
        return True
    raise ValueError(kind)


def _plan_negative(kind, r, rng, S):
    if kind == "latency_spike":
        d = int(rng.uniform(30, 70))
        s = place(r, rng, ["qoe"], d, r.start + 240, S - 60, margin=240)
        if s is None:
            return False
        reg = int(rng.choice(len(r.region_w), p=r.region_w / r.region_w.sum()))
        r.items.append(dict(kind=kind, s=s, e=s + d, region=reg))
        return True
    if kind == "hype_burst":
        s = place(r, rng, ["chat"], 20, r.start + 420, S - 60, margin=60)
        if s is None:
            return False
        r.items.append(
            dict(kind=kind, s=s, k=int(rng.uniform(200, 800)), hype=int(rng.integers(len(HYPE))))
        )
        return True
    if kind == "newcomer_questions":
        s = place(r, rng, ["chat"], 30, r.start + 300, S - 60, reserve=30, margin=90)
        if s is None:
            return False
        r.items.append(
            dict(
                kind=kind,
                s=s,
                k=int(rng.integers(10, 21)),
                topic=str(rng.choice(list(NEWCOMER_TOPICS))),
            )
        )
        return True
    if kind == "single_account":
        nb = int(rng.integers(3, 8))
        bursts = []
        for _ in range(nb * 3):
            if len(bursts) >= nb:
                break
            s = place(r, rng, ["chat"], 30, r.start + 600, S - 60, margin=240)
            if s is not None:
                bursts.append(s)
        if len(bursts) < 3:
            return False
        r.items.append(
            dict(kind=kind, bursts=sorted(bursts), tpl=int(rng.integers(len(FAN_TEMPLATES))))
        )
        return True
    if kind == "small_room_noise":
        nb = int(rng.integers(1, 3))
        ok = False
        for _ in range(nb):
            s = place(
                r, rng, ["chat", "traffic"], 90, r.start + 120, S - 600, reserve=900, margin=60
            )
            if s is not None:
                r.items.append(dict(kind=kind, s=s, k=int(rng.integers(3, 9))))
                ok = True
        return ok
    raise ValueError(kind)


# --------------------------------------------------------------------------- room simulation


def _ou(rng, n, sigma, rho=0.85):
    x = np.empty(n)
    x[0] = rng.normal(0, sigma)
    eps = rng.normal(0, sigma * np.sqrt(1 - rho * rho), n)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + eps[i]
    return x - sigma * sigma / 2


def _stays(rng, n, r):
    st = rng.lognormal(np.log(r.stay_med), r.stay_sigma, n)
    loyal = rng.random(n) < r.loyal
    st[loyal] = r.loyal_xm * (1 + rng.pareto(r.loyal_alpha, int(loyal.sum())))
    return np.maximum(st, 2.0)


def _in_sessions(rng, join, leave, expected, mult, end_ms):
    """Poisson event times inside sessions, thinned by a per-second multiplier."""
    mmax = float(mult.max()) if len(mult) else 1.0
    if mmax <= 0 or len(join) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lv = np.minimum(leave, end_ms)
    dur = np.maximum(lv - join, 0)
    n = rng.poisson(expected * dur / 1000.0 * mmax)
    idx = np.repeat(np.arange(len(join)), n)
    if len(idx) == 0:
        return idx, idx.astype(np.int64)
    d = dur[idx]
    ts = join[idx] + 1 + (rng.random(len(idx)) * np.maximum(d - 2, 0)).astype(np.int64)
    keep = rng.random(len(idx)) * mmax < mult[np.minimum(ts // 1000, len(mult) - 1)]
    return idx[keep], ts[keep]


def _suffix(rng, n):
    return rng.choice(len(SUFFIX), size=n, p=SUFFIX_P)


def _zipf_w(n, rng, a=0.9):
    w = 1.0 / np.arange(1, n + 1) ** a
    return rng.permutation(w)


def _obfuscate(rng, text, heavy):
    chars = list(text)
    if heavy or rng.random() < 0.25:
        for i, c in enumerate(chars):
            if c.isascii() and c.isalnum():
                u = rng.random()
                if u < (0.35 if heavy else 0.1):
                    chars[i] = chr(ord(c) + 0xFEE0)
                elif u < (0.65 if heavy else 0.2):
                    chars[i] = c.translate(CYRILLIC)
    nsep = (
        int(rng.integers(2, 6))
        if heavy
        else (int(rng.integers(1, 3)) if rng.random() < 0.35 else 0)
    )
    for _ in range(nsep):
        pos = int(rng.integers(1, len(chars)))
        chars.insert(pos, SEPARATORS[int(rng.integers(len(SEPARATORS)))])
    out = "".join(chars)
    if rng.random() < (0.2 if heavy else 0.08):
        out = ["【福利】", "@所有人 ", "❗", "📢"][int(rng.integers(4))] + out
    tail = SPAM_TAIL[int(rng.integers(len(SPAM_TAIL)))]
    if rng.random() < 0.5:
        tail += SPAM_TAIL[int(rng.integers(len(SPAM_TAIL)))]
    return out + tail


def _rand_alnum(rng, n):
    return "".join(ALNUM[int(i)] for i in rng.integers(0, len(ALNUM), n))


def _spam_campaign(rng):
    k = int(rng.integers(2, 5))
    tpls = [SPAM_TEMPLATES[i] for i in rng.choice(len(SPAM_TEMPLATES), k, replace=False)]
    base_wx = ["lm", "xy", "tb", "hh", "aa", "zk", "mm"][int(rng.integers(7))] + str(
        int(rng.integers(1000, 99999))
    )
    wx = [
        base_wx[:-1] + str(int(d)) for d in rng.choice(10, int(rng.integers(1, 4)), replace=False)
    ]
    qq = [str(int(rng.integers(10**8, 4 * 10**9))) for _ in range(int(rng.integers(1, 3)))]
    shop = SHOP_WORDS[int(rng.integers(len(SHOP_WORDS)))] + str(int(rng.integers(10, 999)))
    dom = ["t.cn/", "dwz.win/", "s.tmal1.top/", "u.jd-cn.vip/"][int(rng.integers(4))]
    links = [
        dom + _rand_alnum(rng, int(rng.integers(5, 8))) for _ in range(int(rng.integers(1, 3)))
    ]
    return dict(tpls=tpls, wx=wx, qq=qq, shop=shop, links=links)


def _spam_text(rng, camp, heavy):
    tpl = camp["tpls"][int(rng.integers(len(camp["tpls"])))]
    wx = camp["wx"][int(rng.integers(len(camp["wx"])))]
    qq = camp["qq"][int(rng.integers(len(camp["qq"])))]
    if rng.random() < 0.3:  # rotating digits
        j = int(rng.integers(len(wx) - 3, len(wx)))
        wx = wx[:j] + str(int(rng.integers(10))) + wx[j + 1 :]
    if rng.random() < 0.3:
        j = int(rng.integers(len(qq) - 2, len(qq)))
        qq = qq[:j] + str(int(rng.integers(10))) + qq[j + 1 :]
    text = tpl.format(
        wxw=WXW[int(rng.integers(len(WXW)))],
        wx=wx,
        qq=qq,
        shop=camp["shop"],
        link=camp["links"][int(rng.integers(len(camp["links"])))],
        n=int(rng.choice([5, 8, 10, 20, 30, 50, 100, 200, 300, 500, 800])),
        d=int(rng.integers(1, 5)),
    )
    return _obfuscate(rng, text, heavy)


def _question_text(rng, topic):
    base = NEWCOMER_TOPICS[topic][int(rng.integers(len(NEWCOMER_TOPICS[topic])))]
    return (
        Q_PREFIX[int(rng.integers(len(Q_PREFIX)))]
        + base
        + Q_SUFFIX[int(rng.integers(len(Q_SUFFIX)))]
    )


class RoomOut:
    """Columns of one room's events before formatting."""

    def __init__(self):
        self.parts = []  # (type, ts array, session idx array, extra columns dict)

    def add(self, typ, ts, sess, **cols):
        if len(ts):
            self.parts.append((typ, np.asarray(ts, np.int64), np.asarray(sess, np.int64), cols))


def _simulate_room(r: Room, night, seed):
    rng = np.random.default_rng([seed, zlib.crc32(night["name"].encode()), r.idx, 7])
    S = night["S"]
    END = S * SEC
    t = np.arange(S, dtype=float)
    rel = np.maximum(t - r.start, 0)
    alive = t >= r.start
    labels, negs = [], []

    common = alive * (1 - np.exp(-(rel + 1) / r.ramp_s))
    follow_extra = np.ones(S)
    if r.opening:
        A, tau = r.opening
        boost = A * np.exp(-rel / tau)
        common = common * (1 + boost)
        follow_extra = 1 + 2 * boost
        negs.append(
            dict(
                room_id=r.rid,
                start=r.start * SEC,
                end=min(S, r.start + int(3 * tau)) * SEC,
                **{"class": "opening_ease"},
            )
        )
    sig = float(np.clip(0.62 - 0.11 * np.log10(r.size), 0.1, 0.55))
    nmin = S // 60 + 2
    noise = np.exp(np.interp(t / 60.0, np.arange(nmin), _ou(rng, nmin, sig)))
    common = common * noise
    chat_noise = np.exp(np.interp(t / 60.0, np.arange(nmin), _ou(rng, nmin, sig * 1.3 + 0.15, 0.6)))

    promo_f = np.ones(S)
    for it in r.items:
        if it["kind"] == "promo":
            s, D, h, P, ramp = it["s"], it["D"], it["h"], it["P"], it["ramp"]
            f = np.zeros(S)
            on = (t >= s) & (t < s + D)
            f[on] = (P - 1) * np.minimum(1, (t[on] - s) / ramp)
            after = t >= s + D
            f[after] = (P - 1) * np.exp(-np.log(2) * (t[after] - s - D) / h)
            promo_f *= 1 + f
            negs.append(
                dict(
                    room_id=r.rid,
                    start=s * SEC,
                    end=min(S, int(s + D + 3 * h)) * SEC,
                    **{"class": "promo_ebb"},
                )
            )

    feed_mult = np.ones(S)
    blackouts = []
    exit_items = []
    for it in r.items:
        k = it["kind"]
        if k == "feed_cut":
            s, e = it["s"], it["e"]
            feed_mult[s:e] = rng.uniform(0.0, 0.04)
            labels.append(
                dict(
                    alert="traffic_cliff",
                    room_id=r.rid,
                    start=s * SEC,
                    end=e * SEC,
                    **{"class": "feed_cut"},
                )
            )
        elif k == "stream_outage":
            s, e = it["s"], it["e"]
            blackouts.append((s * SEC, e * SEC))
            common[s:e] = 0
            if e < S:
                bump = 1 + rng.uniform(0.5, 1.5) * np.exp(
                    -np.maximum(t - e, 0) / rng.uniform(60, 150)
                )
                common[e:] *= bump[e:]
            labels.append(
                dict(
                    alert="traffic_cliff",
                    room_id=r.rid,
                    start=s * SEC,
                    end=e * SEC,
                    **{"class": "stream_outage"},
                )
            )
        elif k == "mass_exit":
            s = it["s"]
            dip = 1 - rng.uniform(0.2, 0.5) * np.exp(-np.maximum(t - s, 0) / rng.uniform(180, 420))
            common[s:] *= dip[s:]
            exit_items.append(it)

    # ---- arrivals
    probe = _stays(rng, 20000, r)
    lam = r.size / float(np.minimum(probe, 3600).mean())
    promo_x = promo_f - 1
    chan_mult = [
        promo_f * feed_mult,
        follow_extra * (1 + 0.3 * promo_x),
        1 + 0.5 * promo_x,
        1 + 1.6 * promo_x,
        1 + 1.0 * promo_x,
        np.ones(S),
    ]
    js, chs = [], []
    for c in range(6):
        rate = lam * r.channel_p[c] * common * chan_mult[c]
        cnt = rng.poisson(rate)
        sec = np.repeat(np.arange(S), cnt)
        js.append(sec * SEC + rng.integers(0, SEC, len(sec)))
        chs.append(np.full(len(sec), c, np.int8))
    join = np.concatenate(js).astype(np.int64)
    chan = np.concatenate(chs)
    o = np.argsort(join, kind="stable")
    join, chan = join[o], chan[o]
    n = len(join)
    stay = _stays(rng, n, r)
    pf = promo_f[join // SEC]
    short = rng.random(n) < (1 - 1 / pf)
    stay[short] *= rng.uniform(0.25, 0.8, int(short.sum()))
    leave = join + np.maximum((stay * SEC).astype(np.int64), 2000)
    kind = np.zeros(n, np.int8)  # 0 normal, 1 newcomer, 2 friend, 3 fan, 4 bot

    for it in exit_items:
        te = it["s"] * SEC
        on = np.nonzero((join < te) & (leave > te + 30 * SEC))[0]
        pick = on[rng.random(len(on)) < it["frac"]]
        leave[pick] = te + (rng.beta(2, 2.5, len(pick)) * 30 * SEC).astype(np.int64)
    for bs, be in blackouts:
        on = np.nonzero((join < bs) & (leave > bs))[0]
        pick = on[rng.random(len(on)) < rng.uniform(0.3, 0.7)]
        leave[pick] = bs + (rng.random(len(pick)) * (be - bs)).astype(np.int64)

    # ---- extra sessions (planted actors)
    ex_join, ex_leave, ex_chan, ex_kind = [], [], [], []
    planted_msgs = []  # (session index placeholder list, ts list, text list)
    n_base = n

    def add_sessions(jn, lv, ch, kd):
        base = n_base + sum(len(x) for x in ex_join)
        ex_join.append(np.asarray(jn, np.int64))
        ex_leave.append(np.asarray(lv, np.int64))
        ex_chan.append(np.asarray(ch, np.int8))
        ex_kind.append(np.full(len(jn), kd, np.int8))
        return np.arange(base, base + len(jn))

    for it in r.items:
        k = it["kind"]
        if k == "newcomer_questions":
            s = it["s"] * SEC
            qt = s + np.sort(rng.integers(0, 30 * SEC, it["k"]))
            jn = qt - rng.integers(3 * SEC, 45 * SEC, it["k"])
            lv = jn + (_stays(rng, it["k"], r) * SEC).astype(np.int64) + 50 * SEC
            ch = rng.choice(6, it["k"], p=[0.4, 0.05, 0.25, 0.2, 0.05, 0.05])
            ids = add_sessions(jn, lv, ch, 1)
            texts = [_question_text(rng, it["topic"]) for _ in range(it["k"])]
            planted_msgs.append((ids, qt, texts))
            negs.append(
                dict(
                    room_id=r.rid,
                    start=int(jn.min()),
                    end=s + 30 * SEC,
                    **{"class": "newcomer_questions"},
                )
            )
        elif k == "small_room_noise":
            s = it["s"] * SEC
            kk = it["k"]
            jn = s + np.sort(rng.integers(0, 25 * SEC, kk))
            lv = s + int(rng.uniform(4, 12) * MIN) + rng.integers(0, 90 * SEC, kk)
            ids = add_sessions(jn, lv, rng.choice([1, 4], kk, p=[0.4, 0.6]), 2)
            mi, mt, mx = [], [], []
            for j in range(kk):
                for _ in range(int(rng.integers(1, 5))):
                    mi.append(ids[j])
                    mt.append(int(jn[j] + rng.integers(3 * SEC, 90 * SEC)))
                    mx.append(FRIEND[int(rng.integers(len(FRIEND)))])
            planted_msgs.append((np.array(mi), np.array(mt, np.int64), mx))
            negs.append(
                dict(
                    room_id=r.rid,
                    start=s,
                    end=int(min(lv.max() + 30 * SEC, END)),
                    **{"class": "small_room_noise"},
                )
            )
        elif k == "single_account":
            first = it["bursts"][0] * SEC
            jn = max(r.start * SEC + 1000, first - int(rng.uniform(3, 15) * MIN))
            lv = (
                END + MIN
                if rng.random() < 0.6
                else it["bursts"][-1] * SEC + int(rng.uniform(2, 10) * MIN)
            )
            ids = add_sessions([jn], [lv], [1], 3)
            mode, tpl = FAN_TEMPLATES[it["tpl"]]
            mi, mt, mx = [], [], []
            counter = int(rng.integers(1, 20))
            for b in it["bursts"]:
                m = int(rng.integers(8, 16))
                gaps = rng.uniform(1.6, 30.0 / m * 1.6, m)
                tt = np.cumsum(gaps)
                tt = tt / tt[-1] * rng.uniform(24, 29.5)
                for x in tt:
                    mi.append(ids[0])
                    mt.append(int(b * SEC + x * SEC))
                    if mode == "same":
                        mx.append(tpl)
                    else:
                        counter += 1 if rng.random() < 0.7 else 0
                        mx.append(
                            tpl.format(n=counter if "次" in tpl else int(rng.integers(1, 30)))
                        )
                negs.append(
                    dict(
                        room_id=r.rid,
                        start=b * SEC,
                        end=b * SEC + 30 * SEC,
                        **{"class": "single_account"},
                    )
                )
            planted_msgs.append((np.array(mi), np.array(mt, np.int64), mx))
        elif k in ("template_flood", "obfuscated_flood"):
            s, F, na = it["s"] * SEC, it["F"] * SEC, it["n"]
            camp = _spam_campaign(rng)
            heavy = k == "obfuscated_flood"
            a0 = s + (rng.random(na) ** 1.5 * 0.3 * F).astype(np.int64)
            a0[0] = s
            a1 = np.minimum(a0 + (rng.uniform(0.5, 1.0, na) * F).astype(np.int64), s + F)
            jn = a0 - rng.integers(2 * SEC, 15 * SEC, na)
            lv = np.where(rng.random(na) < 0.5, a1 + rng.integers(5 * SEC, 60 * SEC, na), END + MIN)
            ids = add_sessions(jn, lv, rng.choice(6, na, p=[0.3, 0.0, 0.2, 0.1, 0.15, 0.25]), 4)
            mi, mt, mx = [], [], []
            for j in range(na):
                x = int(a0[j])
                while x <= a1[j]:
                    mi.append(ids[j])
                    mt.append(x)
                    mx.append(_spam_text(rng, camp, heavy))
                    x += int(rng.uniform(2, 6) * SEC)
            mt_a = np.array(mt, np.int64)
            planted_msgs.append((np.array(mi), mt_a, mx))
            labels.append(
                dict(
                    alert="spam_flood",
                    room_id=r.rid,
                    start=int(mt_a.min()),
                    end=int(mt_a.max()),
                    **{"class": k},
                )
            )

    if ex_join:
        join = np.concatenate([join, *ex_join])
        leave = np.concatenate([leave, *ex_leave])
        chan = np.concatenate([chan, *ex_chan])
        kind = np.concatenate([kind, *ex_kind])
    n = len(join)
    human = kind != 4

    # mass exit recovery: online back to 80% of before
    if exit_items:
        jh = np.bincount(np.minimum(join // SEC, S - 1), minlength=S)
        lh = np.bincount(np.minimum(leave[leave < END] // SEC, S - 1), minlength=S)
        online = np.cumsum(jh - lh)
        for it in exit_items:
            s = it["s"]
            pre = online[max(0, s - 120) : s].mean()
            after = np.nonzero(online[s + 30 :] >= 0.8 * pre)[0]
            e = S if len(after) == 0 else s + 30 + int(after[0])
            labels.append(
                dict(
                    alert="traffic_cliff",
                    room_id=r.rid,
                    start=s * SEC,
                    end=e * SEC,
                    **{"class": "mass_exit"},
                )
            )

    # ---- per-session traits
    nreg = len(r.region_w)
    region = rng.choice(nreg, n, p=r.region_w / r.region_w.sum())
    umult = rng.lognormal(0, 0.18, n)
    umult[rng.random(n) < 0.03] *= 1.8
    out = RoomOut()

    # ---- joins / leaves
    out.add("join", join, np.arange(n), chan=chan)
    has_leave = leave < END
    out.add("leave", leave[has_leave], np.nonzero(has_leave)[0])

    # ---- latency
    rep = human & (rng.random(n) < r.report_frac)
    ri = np.nonzero(rep)[0]
    period = (
        rng.choice([10, 15, 20, 30], len(ri), p=[0.15, 0.25, 0.2, 0.4])
        * SEC
        * rng.uniform(0.95, 1.05, len(ri))
    )
    off = rng.uniform(0.3, 1.0, len(ri)) * period
    lv = np.minimum(leave[ri], END)
    cnt = np.maximum(np.floor((lv - join[ri] - off) / period).astype(np.int64) + 1, 0)
    li = np.repeat(ri, cnt)
    first = np.repeat(np.cumsum(cnt) - cnt, cnt)
    kk = np.arange(len(li)) - first
    rp = np.repeat(np.arange(len(ri)), cnt)
    lts = (join[li] + off[rp] + kk * period[rp] + rng.normal(0, 250, len(li))).astype(np.int64)
    lts = np.clip(lts, join[li] + 1, np.minimum(leave[li], END) - 1)
    ok = lts > join[li]
    li, lts = li[ok], lts[ok]
    lreg = region[li]
    med = np.asarray(night["region_med"])[lreg] * r_region_shift(r, nreg)[lreg]
    sig = np.asarray(night["region_sig"])[lreg]
    val = med * umult[li] * rng.lognormal(0, 1, len(li)) ** sig
    tail = rng.random(len(li)) < 0.012
    val[tail] *= 1 + rng.pareto(1.6, int(tail.sum())) * 2
    qoe_windows = []  # (s_ms, e_ms, region or None) for chat lag mentions
    for it in r.items:
        k = it["kind"]
        if k == "region_degradation":
            s, e = it["s"] * SEC, it["e"] * SEC
            m = (lreg == it["region"]) & (lts >= s) & (lts < e)
            x = lts[m]
            q = it["q"] * np.clip((x - s) / 30000, 0, 1) * np.clip((e - x) / 20000, 0, 1)
            q = np.maximum(q, it["q"] * 0.5)
            bad = rng.random(len(x)) < q
            v = val[m] * 1.15
            v[bad] = rng.lognormal(np.log(it["med"]), 0.32, int(bad.sum()))
            val[m] = v
            qoe_windows.append((s, e, it["region"]))
            labels.append(
                dict(
                    alert="latency_slo",
                    room_id=r.rid,
                    start=s,
                    end=e,
                    **{"class": "region_degradation"},
                )
            )
        elif k == "latency_spike":
            s, e = it["s"] * SEC, it["e"] * SEC
            m = (lreg == it["region"]) & (lts >= s) & (lts < e)
            v = val[m]
            hit = rng.random(len(v)) < 0.94
            v[hit] = np.exp(rng.uniform(np.log(800), np.log(3000), int(hit.sum())))
            val[m] = v
            qoe_windows.append((s, e + 20 * SEC, it["region"]))
            negs.append(dict(room_id=r.rid, start=s, end=e, **{"class": "latency_spike"}))
    val = np.minimum(val, 30000)
    out.add("latency", lts, li, value=np.rint(val).astype(np.int64), region=lreg)

    # ---- stalls
    si, sts = _in_sessions(
        rng, join[human], leave[human], r.stall_rate * umult[human] ** 3, np.ones(S), END
    )
    si = np.nonzero(human)[0][si]
    sdur = rng.lognormal(np.log(650), 0.9, len(si)) + 40
    s_idx, s_ts, s_dur = [si], [sts], [sdur]
    for it in r.items:
        if it["kind"] == "stall_storm":
            s, e = it["s"] * SEC, it["e"] * SEC
            m = human & (join < e) & (leave > s)
            if it["region"] is not None:
                m &= region == it["region"]
            cand = np.nonzero(m)[0]
            cand = cand[rng.random(len(cand)) < it["frac"]]
            a = np.maximum(join[cand], s)
            b = np.minimum(np.minimum(leave[cand], END), e)
            ramp = np.clip((np.arange(S) * SEC - s) / 40000, 0, 1) * ((np.arange(S) * SEC) < e)
            ii, tt = _in_sessions(rng, a, b, np.full(len(cand), 1.0 / it["every"]), ramp, END)
            s_idx.append(cand[ii])
            s_ts.append(tt)
            s_dur.append(rng.lognormal(np.log(2300), 0.7, len(ii)) + 200)
            qoe_windows.append((s, e, it["region"]))
            labels.append(
                dict(
                    alert="stall_slo",
                    room_id=r.rid,
                    start=s,
                    end=e,
                    **{"class": "stall_storm" if it["region"] is None else "regional_stall_storm"},
                )
            )
    out.add(
        "stall",
        np.concatenate(s_ts),
        np.concatenate(s_idx),
        dur=np.rint(np.concatenate(s_dur)).astype(np.int64),
    )

    # ---- organic chat
    act_p = rng.uniform(0.25, 0.5)
    active = human & (rng.random(n) < act_p)
    w = np.where(active, np.minimum(rng.lognormal(0, 1.1, n), 15.0), 0.0)
    if active.any():
        w /= w[active].mean()
    per_min = r.chat_c * (max(r.size, 3) / 10.0) ** -0.36 / act_p
    chat_mult = np.minimum(chat_noise * (1 + 0.7 * promo_x), 4.0) * alive
    # nobody types more than ~2.5 messages a minute on average (x chat_mult at peaks)
    rate_i = np.minimum(w * per_min, 2.5) / 60.0 * (kind != 4)
    ci, cts = _in_sessions(rng, join, leave, rate_i, chat_mult, END)
    texts = _organic_texts(rng, r, ci, cts, join, region, promo_f, qoe_windows)
    c_idx, c_ts, c_txt = [ci], [cts], [texts]

    # ---- hype bursts (need online viewers at t)
    for it in r.items:
        if it["kind"] != "hype_burst":
            continue
        s = it["s"] * SEC
        on = np.nonzero(human & (kind == 0) & (join < s - 5 * SEC) & (leave > s + 25 * SEC))[0]
        k = int(min(it["k"], 0.45 * len(on)))
        if k < 100:
            continue
        who = rng.choice(on, k, replace=False)
        primary, variants = HYPE[it["hype"]]
        tt = s + (np.minimum(rng.gamma(2.0, 3.2, k), 19.5) * SEC).astype(np.int64)
        twice = rng.random(k) < 0.12
        tt2 = np.minimum(tt[twice] + rng.integers(1500, 8000, int(twice.sum())), s + 19_900)
        who_all = np.concatenate([who, who[twice]])
        tt_all = np.concatenate([tt, tt2])
        txt = [
            primary if rng.random() < 0.8 else variants[int(rng.integers(len(variants)))]
            for _ in range(len(who_all))
        ]
        c_idx.append(who_all)
        c_ts.append(tt_all)
        c_txt.append(txt)
        negs.append(dict(room_id=r.rid, start=s, end=s + 20 * SEC, **{"class": "hype_burst"}))
    for ids, tts, txt in planted_msgs:
        c_idx.append(np.asarray(ids, np.int64))
        c_ts.append(np.asarray(tts, np.int64))
        c_txt.append(list(txt))
    c_idx = np.concatenate(c_idx)
    c_ts = np.concatenate(c_ts)
    c_txt = [x for part in c_txt for x in part]
    ok = (c_ts > join[c_idx]) & (c_ts < np.minimum(leave[c_idx], END))
    keep = np.nonzero(ok)[0]
    out.add("danmaku", c_ts[keep], c_idx[keep], text=[c_txt[i] for i in keep.tolist()])

    # ---- orders
    order_mult = (1 + 1.5 * promo_x) * alive
    oi, ots = _in_sessions(rng, join, leave, np.where(human, r.conv / 60.0, 0.0), order_mult, END)
    m = len(oi)
    qty = rng.choice([1, 1, 1, 1, 2, 2, 3], m)
    disc = np.where(promo_f[np.minimum(ots // SEC, S - 1)] > 1.2, rng.uniform(0.6, 0.85, m), 1.0)
    amount = np.round(r.price * rng.lognormal(0, 0.35, m) * qty * disc, 1)
    amount = np.where(rng.random(m) < 0.4, np.floor(amount) + 0.9, amount)
    base = int(rng.integers(10**17, 9 * 10**17))
    oid = base + np.cumsum(rng.integers(1, 50000, m))
    ref = rng.random(m) < 0.035
    rts = ots[ref] + (rng.uniform(1, 25, int(ref.sum())) * MIN).astype(np.int64)
    rk = rts < END
    o_ts = np.concatenate([ots, rts[rk]])
    o_idx = np.concatenate([oi, oi[ref][rk]])
    o_id = np.concatenate([oid, oid[ref][rk]])
    o_amt = np.concatenate([amount, amount[ref][rk]])
    o_st = np.concatenate([np.zeros(m, np.int8), np.ones(int(rk.sum()), np.int8)])
    out.add("order", o_ts, o_idx, oid=o_id, amount=o_amt, status=o_st)

    # ---- user ids: unique per room, ~4% of viewers come back later with the same id
    uid_num = rng.integers(10**9, 10**11, n)
    _, first_i = np.unique(uid_num, return_index=True)
    if len(first_i) < n:
        dup = np.setdiff1d(np.arange(n), first_i)
        uid_num[dup] = rng.integers(10**11, 10**12, len(dup))
    order = np.argsort(join, kind="stable")
    rank_of = np.empty(n, np.int64)
    rank_of[order] = np.arange(n)
    used = np.zeros(n, bool)
    cands = order[(rng.random(n) < 0.04) & (kind[order] == 0)]
    for j in cands.tolist():
        rj = rank_of[j]
        if rj < 10:
            continue
        for _ in range(4):
            i = int(order[int(rng.integers(0, rj))])
            if (
                not used[i]
                and kind[i] == 0
                and leave[i] < join[j] - 60 * SEC
                and leave[i] < END
                and not any(bs <= leave[i] < be for bs, be in blackouts)
            ):
                used[i] = True
                uid_num[j] = uid_num[i]
                break
    # a reused id inherits; chains resolved in join order
    uid = uid_num.astype(str).tolist()

    # ---- blackout filter (stream outage: every event of the room is lost)
    if blackouts:
        for p_i, (typ, ts, sess, cols) in enumerate(out.parts):
            m = np.ones(len(ts), bool)
            for bs, be in blackouts:
                m &= ~((ts >= bs) & (ts < be))
            idx = np.nonzero(m)[0]
            cols2 = {
                k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx.tolist()])
                for k, v in cols.items()
            }
            out.parts[p_i] = (typ, ts[idx], sess[idx], cols2)
    return out, uid, labels, negs


def r_region_shift(r, nreg):
    g = np.random.default_rng(zlib.crc32(r.rid.encode()))
    return g.uniform(0.9, 1.12, nreg)


def _organic_texts(rng, r, ci, cts, join, region, promo_f, qoe_windows):
    m = len(ci)
    if m == 0:
        return []
    pools = [
        ("greet", GREET, 0.06, 0.03),
        ("react", REACT, 0.34, 0.45),
        ("gq", GENERIC_Q, 0.12, 0.14),
        ("pq", PRODUCT_Q[r.category], 0.12, 0.12),
        ("laugh", LAUGH, 0.12, 0.07),
        ("qm", QMARK, 0.06, 0.05),
        ("emo", EMOJI_MSG, 0.18, 0.14),
    ]
    vocab, w_norm, w_promo = [], [], []
    for _, words, a, b in pools:
        z = _zipf_w(len(words), rng)
        z = z / z.sum()
        vocab += words
        w_norm.append(z * a)
        w_promo.append(z * b)
    w_norm = np.concatenate(w_norm)
    w_promo = np.concatenate(w_promo)
    w_norm /= w_norm.sum()
    w_promo /= w_promo.sum()
    in_promo = promo_f[np.minimum(cts // SEC, len(promo_f) - 1)] > 1.3
    pick = np.where(
        in_promo, rng.choice(len(vocab), m, p=w_promo), rng.choice(len(vocab), m, p=w_norm)
    )
    texts = [vocab[i] for i in pick.tolist()]
    # greeting for a session's first message soon after joining
    o = np.lexsort((cts, ci))
    firsts = o[np.r_[True, ci[o][1:] != ci[o][:-1]]]
    g = firsts[(cts[firsts] - join[ci[firsts]] < 120 * SEC) & (rng.random(len(firsts)) < 0.45)]
    gw = _zipf_w(len(GREET), rng)
    for i, w in zip(
        g.tolist(), rng.choice(len(GREET), len(g), p=gw / gw.sum()).tolist(), strict=False
    ):
        texts[i] = GREET[w]
    # lag mentions during quality trouble
    for s, e, reg in qoe_windows:
        mm = (cts >= s) & (cts < e)
        if reg is not None:
            mm &= region[ci] == reg
        hit = np.nonzero(mm & (rng.random(m) < 0.2))[0]
        for i in hit.tolist():
            texts[i] = LAG[int(rng.integers(len(LAG)))]
    suf = _suffix(rng, m)
    return [t + SUFFIX[s] if s else t for t, s in zip(texts, suf.tolist(), strict=False)]


# --------------------------------------------------------------------------- output


def _format(out: RoomOut, uid, rid, base_ms, regions):
    ts_all, rank_all, lines = [], [], []
    pre = '{"type":"%s","room_id":"' + rid + '","ts":'
    for typ, ts, sess, cols in out.parts:
        tsa = ts + base_ms
        u = [uid[i] for i in sess.tolist()]
        tl = tsa.tolist()
        head = pre % typ
        if typ == "join":
            ch = cols["chan"].tolist()
            L = [
                f'{head}{a},"user_id":"{b}","source":"{CHANNELS[c]}"}}'
                for a, b, c in zip(tl, u, ch, strict=False)
            ]
        elif typ == "leave":
            L = [f'{head}{a},"user_id":"{b}"}}' for a, b in zip(tl, u, strict=False)]
        elif typ == "latency":
            L = [
                f'{head}{a},"user_id":"{b}","value_ms":{v},"kind":"e2e","region":"{regions[g]}"}}'
                for a, b, v, g in zip(
                    tl, u, cols["value"].tolist(), cols["region"].tolist(), strict=False
                )
            ]
        elif typ == "stall":
            L = [
                f'{head}{a},"user_id":"{b}","duration_ms":{d}}}'
                for a, b, d in zip(tl, u, cols["dur"].tolist(), strict=False)
            ]
        elif typ == "danmaku":
            L = [
                f'{head}{a},"user_id":"{b}","text":{json.dumps(x, ensure_ascii=False)}}}'
                for a, b, x in zip(tl, u, cols["text"], strict=False)
            ]
        elif typ == "order":
            L = [
                f'{head}{a},"user_id":"{b}","order_id":"{o}","amount":{m},"status":"{"refunded" if s else "paid"}"}}'
                for a, b, o, m, s in zip(
                    tl,
                    u,
                    cols["oid"].tolist(),
                    cols["amount"].tolist(),
                    cols["status"].tolist(),
                    strict=False,
                )
            ]
        else:
            raise ValueError(typ)
        ts_all.append(tsa)
        rank_all.append(np.full(len(tsa), TYPE_RANK[typ], np.int64))
        lines.extend(L)
    if not ts_all:
        return np.zeros(0, np.int64), []
    return np.concatenate(ts_all) * 8 + np.concatenate(rank_all), lines


def build_night(name: str, seed: int):
    cfg = NIGHTS[name]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    S = int(rng.uniform(*cfg["minutes"]) * 60)
    y, mo, d, hh, mm = cfg["date"]
    base_ms = int(
        _dt.datetime(y, mo, d, hh, mm, tzinfo=_dt.timezone(_dt.timedelta(hours=8))).timestamp()
        * 1000
    )
    nreg = int(rng.integers(cfg["n_regions"][0], cfg["n_regions"][1] + 1))
    ridx = np.sort(rng.choice(len(REGION_POOL), nreg, replace=False))
    regions = [REGION_POOL[i][0] for i in ridx]
    region_med = [float(np.clip(REGION_POOL[i][1] * rng.uniform(0.9, 1.1), 150, 350)) for i in ridx]
    region_sig = [float(rng.uniform(0.25, 0.42)) for _ in ridx]
    night = dict(name=name, S=S, region_med=region_med, region_sig=region_sig)
    rooms = _make_rooms(cfg, rng, S, nreg)
    _plan(cfg, rooms, rng, S)
    keys, lines, labels, negs = [], [], [], []
    for r in rooms:
        out, uid, lab, neg = _simulate_room(r, night, seed)
        k, L = _format(out, uid, r.rid, base_ms, regions)
        keys.append(k)
        lines.extend(L)
        for x in lab:
            x["start"] += base_ms
            x["end"] += base_ms
        for x in neg:
            x["start"] += base_ms
            x["end"] += base_ms
        labels += lab
        negs += neg
    key = np.concatenate(keys)
    order = np.argsort(key, kind="stable")
    labels = [
        dict(
            alert=x["alert"],
            room_id=x["room_id"],
            start=int(x["start"]),
            end=int(x["end"]),
            **{"class": x["class"]},
        )
        for x in sorted(labels, key=lambda x: x["start"])
    ]
    negs = [
        dict(
            room_id=x["room_id"], start=int(x["start"]), end=int(x["end"]), **{"class": x["class"]}
        )
        for x in sorted(negs, key=lambda x: x["start"])
    ]
    info = dict(rooms=[(r.rid, round(r.size)) for r in rooms], minutes=S / 60, regions=regions)
    return lines, order, labels, negs, info


def negatives_path(labels_path) -> Path:
    p = Path(labels_path)
    return p.with_name(p.stem + ".negatives.json")


def write_night(name: str, seed: int, log_path, labels_path) -> int:
    lines, order, labels, negs, _ = build_night(name, seed)
    with open(log_path, "w", encoding="utf-8") as f:
        step = 200_000
        ol = order.tolist()
        for i in range(0, len(ol), step):
            f.write("\n".join(lines[j] for j in ol[i : i + step]))
            f.write("\n")
    Path(labels_path).write_text(json.dumps(labels, ensure_ascii=False, indent=1))
    negatives_path(labels_path).write_text(json.dumps(negs, ensure_ascii=False, indent=1))
    return len(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description="independent livewatch test nights")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--night", default=nights()[0], choices=nights())
    ap.add_argument("--out", default="night.jsonl")
    ap.add_argument("--labels-out", default="labels.json")
    ap.add_argument("--list", action="store_true", help="print night names and exit")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(nights()))
        return 0
    n = write_night(a.night, a.seed, a.out, a.labels_out)
    print(
        f"{a.night} seed={a.seed}: {n} lines -> {a.out}; labels -> {a.labels_out}, "
        f"{negatives_path(a.labels_out)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
