"""change notifications: NOTIFY ownkey_changes after changes to rules, keys, orgs, scope keys

Revision ID: 0005
Revises: 0004

PostgreSQL only (SQLite has no notifications; nothing to do there). See storage/_changes.py for
the payloads. NOTIFY is delivered at commit, so listeners never see a change that rolled back.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE OR REPLACE FUNCTION ownkey_notify_change() RETURNS trigger AS $$
DECLARE
    r record;
    payload jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    payload := jsonb_build_object('table', TG_TABLE_NAME, 'op', TG_OP);
    IF TG_TABLE_NAME = 'revocation_rules' THEN
        payload := payload || jsonb_build_object(
            'rule_id', r.rule_id, 'org', r.org, 'key_ref', r.key_ref,
            'service_id', r.service_id, 'since', r.since, 'until', r.until);
        IF r.scope IS NOT NULL AND octet_length(r.scope) > 4000 THEN
            payload := payload || jsonb_build_object('scope', NULL, 'partial', true);
        ELSE
            payload := payload || jsonb_build_object('scope', r.scope);
        END IF;
        IF octet_length(payload::text) > 7000 THEN
            payload := jsonb_build_object('table', TG_TABLE_NAME, 'op', TG_OP,
                'rule_id', r.rule_id, 'org', r.org, 'key_ref', r.key_ref, 'partial', true);
        END IF;
    ELSIF TG_TABLE_NAME = 'master_keys' THEN
        payload := payload || jsonb_build_object('ref', r.ref, 'state', r.state);
    ELSIF TG_TABLE_NAME = 'orgs' THEN
        payload := payload || jsonb_build_object('name', r.name);
    ELSIF TG_TABLE_NAME = 'scope_keys' THEN
        payload := payload || jsonb_build_object('key_id', encode(r.key_id, 'hex'));
    END IF;
    PERFORM pg_notify('ownkey_changes', payload::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""

_TRIGGERS = (
    (
        "ownkey_notify_revocation_rules",
        "AFTER INSERT OR UPDATE OR DELETE ON revocation_rules FOR EACH ROW",
    ),
    ("ownkey_notify_master_keys", "AFTER INSERT OR UPDATE OR DELETE ON master_keys FOR EACH ROW"),
    ("ownkey_notify_orgs", "AFTER INSERT OR UPDATE OR DELETE ON orgs FOR EACH ROW"),
    (
        "ownkey_notify_scope_keys",
        "AFTER UPDATE ON scope_keys FOR EACH ROW WHEN ("
        "OLD.shredded_at IS DISTINCT FROM NEW.shredded_at "
        "OR OLD.sealable IS DISTINCT FROM NEW.sealable "
        "OR OLD.keys IS DISTINCT FROM NEW.keys)",
    ),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)
    for name, when in _TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION ownkey_notify_change()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, when in _TRIGGERS:
        table = when.split(" ON ", 1)[1].split(" ", 1)[0]
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ownkey_notify_change()")
