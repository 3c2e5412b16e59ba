"""The development secret key `make run` keeps in the data folder is one settings can read."""

import environ

from crm import embedded


def test_the_development_key_is_read_back_by_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    # A key made before: django-environ would take "$..." for the name of another variable.
    (tmp_path / "secret_key").write_text("$6x(k=old-key-that-settings-cannot-read")

    key = embedded.development_secret_key()
    monkeypatch.setenv("SECRET_KEY", key)

    assert len(key) >= 50
    assert environ.Env().str("SECRET_KEY", default="") == key
    assert embedded.development_secret_key() == key
