"""Simplified Chinese for the portal's own words (the policy's `because` texts are
the policy author's, shown as written)."""

ZH: dict[str, str] = {
    "Policies": "政策",
    "What-if calculator": "取消费用试算",
    "Sign in": "登录",
    "Sign out": "退出",
    "My orders": "我的订单",
    "Language": "语言",
}
