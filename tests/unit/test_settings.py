from __future__ import annotations

from pathlib import Path

import pytest

from kernel.settings import Settings, SettingsError


def test_defaults_and_environment() -> None:
    defaults = Settings.from_env({})
    assert defaults.database_url is None
    assert defaults.max_upload_bytes == 50_000_000
    custom = Settings.from_env(
        {
            "HASHGUARD_DATABASE_URL": "postgresql://h/db",
            "HASHGUARD_DATA_DIR": "/srv/hg",
            "HASHGUARD_MAX_PIXELS": "1_000_000",
            "HASHGUARD_TOOLS": "pdq, md5,,pdq",
            "HASHGUARD_SCAN_TIMEOUT_S": "2.5",
        }
    )
    assert custom.database_url == "postgresql://h/db"
    assert custom.data_dir == Path("/srv/hg")
    assert custom.max_pixels == 1_000_000
    assert custom.tools == ("md5", "pdq")
    assert custom.scan_timeout_s == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [("HASHGUARD_MAX_UPLOAD_BYTES", "lots"), ("HASHGUARD_HASH_WORKERS", "0"), ("HASHGUARD_SCAN_TIMEOUT_S", "-1")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_overrides_win_and_settings_are_frozen() -> None:
    settings = Settings.from_env({"HASHGUARD_LOG_LEVEL": "debug"}, log_level="WARNING")
    assert settings.log_level == "WARNING"
    with pytest.raises(AttributeError):
        settings.log_level = "INFO"  # type: ignore[misc]
