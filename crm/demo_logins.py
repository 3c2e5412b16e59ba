"""The demo workspace's address and logins (imported by `make run` before Django is set up)."""

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo-pass-2026"
# (e-mail, role, full name)
DEMO_USERS = (
    ("admin@demo.example", "admin", "Ada Admin"),
    ("manager@demo.example", "manager", "Max Manager"),
    ("sales@demo.example", "sales", "Sam Sales"),
    ("marketing@demo.example", "marketing", "Mia Marketing"),
    ("partner@demo.example", "partner", "Pat Partner"),
)
