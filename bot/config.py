"""Settings: read once from a YAML file and RITMO_* variables, validated, fail closed."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from ruamel.yaml.error import YAMLError

from bot import bounded_yaml


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the setting and the fix."""


_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")
_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")


def check_remote_url(url: str) -> str:
    """Accept a local path, file://, https:// or ssh remote; refuse anything else."""
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ValueError("must not contain spaces or control characters")
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0] and scheme != "ssh":
        # Never echo the URL: it carries a secret.
        raise ValueError(
            "must not carry credentials; put the token in RITMO_MANIFESTS__TOKEN instead"
        )
    if sep:
        if scheme in ("https", "ssh", "file"):
            return url
        raise ValueError(
            f"scheme {scheme}:// is not supported; use https://, ssh://, file:// or a local path"
        )
    if _SCP_LIKE.match(url):
        return url
    if not url.startswith("/"):
        raise ValueError(f"{url!r} is not an absolute path; give an absolute path or a URL")
    return url


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestsSettings(_Section):
    url: str | None = None  # None: embedded bare repo in data_dir
    branch: str = "main"
    token: str | None = Field(default=None, repr=False)
    author_name: str = "Ritmo"
    author_email: str = "ritmo@localhost"
    push_attempts: int = Field(default=6, ge=1, le=50)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_remote_url(value)

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", value) or ".." in value:
            raise ValueError(f"{value!r} is not a valid branch name")
        return value


class SigningSettings(_Section):
    gnupghome: Path | None = None  # None: data_dir/gnupg
    key: str | None = None  # fingerprint; None: the embedded key
    require_artifact_signatures: bool = False
    trusted_keys: list[str] = Field(default_factory=list)
    trusted_keyring: Path | None = None  # armoured public keys of CI signers
    # People who may change .ritmo/policy.yaml by hand: a commit they sign is obeyed.
    policy_keys: list[str] = Field(default_factory=list)
    policy_keyring: Path | None = None  # armoured public keys of policy_keys

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.replace(" ", "").upper()
        if not _FINGERPRINT.match(value):
            raise ValueError("must be a full 40-hex-digit key fingerprint")
        return value

    @field_validator("trusted_keys", "policy_keys")
    @classmethod
    def _trusted(cls, values: list[str]) -> list[str]:
        out = [v.replace(" ", "").upper() for v in values]
        for v in out:
            if not _FINGERPRINT.match(v):
                raise ValueError(f"{v!r} is not a full 40-hex-digit key fingerprint")
        return out


_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*)/[A-Za-z0-9._-]+$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class GitHubSettings(_Section):
    """The GitHub App Ritmo runs as; checked at start-up when forge.kind is github."""

    app_id: int | None = Field(default=None, gt=0)
    private_key: str | None = Field(default=None, repr=False)  # PEM text
    private_key_file: Path | None = None
    installation_id: int | None = Field(default=None, gt=0)
    repository: str | None = None  # owner/name of the manifests repository on GitHub
    api_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    membership_ttl: int = Field(default=300, ge=0)
    bot_login: str | None = None  # None: the app's slug + "[bot]", read once from GET /app
    webhook_secret: str | None = Field(default=None, repr=False)  # the GitHub App's secret

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not _REPOSITORY.match(value):
            raise ValueError(f"{value!r} is not owner/name, e.g. acme/manifests")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        value = value.rstrip("/")
        parts = urlsplit(value)
        # Installation tokens travel in every request: plain http only to this machine.
        loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK
        if not (parts.scheme == "https" and parts.hostname) and not loopback:
            raise ValueError(
                "must be an https:// URL: https://api.github.com, or https://HOST/api/v3 "
                "for GitHub Enterprise Server"
            )
        return value

    def app(self) -> tuple[int, str, int]:
        """The App's id, private key and installation id, checked at start-up (forge github)."""
        if self.app_id is None:
            raise missing_github("app_id", "the GitHub App's id (its settings page, About)")
        key = self.private_key_pem()
        if self.installation_id is None:
            raise missing_github(
                "installation_id",
                "the id of the app's installation on the manifests repository's account "
                "(the number at the end of the installation's settings URL)",
            )
        return self.app_id, key, self.installation_id

    def private_key_pem(self) -> str:
        """The App's key: one of private_key and private_key_file, an unencrypted PEM RSA key."""
        private_key, key_file = self.private_key, self.private_key_file
        if private_key and key_file:
            raise ConfigError(
                "forge.github.private_key (RITMO_FORGE__GITHUB__PRIVATE_KEY) and "
                "forge.github.private_key_file (RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE) are "
                "both set; keep one"
            )
        if key_file is not None:
            try:
                private_key = Path(key_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    "setting forge.github.private_key_file (RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE):"
                    f" {key_file}: {exc.strerror}; point it at the app's .pem private key"
                ) from None
            where = "forge.github.private_key_file (RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE)"
        elif private_key:
            where = "forge.github.private_key (RITMO_FORGE__GITHUB__PRIVATE_KEY)"
        else:
            raise ConfigError(
                "setting forge.github.private_key (RITMO_FORGE__GITHUB__PRIVATE_KEY) is not set;"
                " set it to the GitHub App's PEM private key, or set "
                "forge.github.private_key_file (RITMO_FORGE__GITHUB__PRIVATE_KEY_FILE) to the "
                ".pem file"
            )
        try:
            key = load_pem_private_key(private_key.encode(), password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, RSAPrivateKey):
            raise ConfigError(
                f"setting {where} is not an unencrypted PEM RSA private key; use the .pem file "
                "generated on the GitHub App's settings page"
            )
        return private_key


def missing_github(setting: str, fix: str) -> ConfigError:
    env = "RITMO_FORGE__GITHUB__" + setting.upper()
    return ConfigError(f"setting forge.github.{setting} ({env}) is not set; set it to {fix}")


class ForgeSettings(_Section):
    kind: Literal["local", "github"] = "local"
    github: GitHubSettings = Field(default_factory=GitHubSettings)


class AuthSettings(_Section):
    # Where earlier versions kept tokens; imported into the database once, then renamed
    # *.imported (bot/store/token_import.py). None: data_dir/tokens.json
    tokens_file: Path | None = None


class CdSettings(_Section):
    """How ArgoCD and Flux report back (bot/deploy/). An unset secret turns its endpoint off."""

    # ArgoCD's notifications webhook cannot sign, so it sends this in X-Ritmo-Token.
    argocd_token: str | None = Field(default=None, repr=False, min_length=16)
    # The secret of Flux's generic-hmac provider: X-Signature: sha256=HMAC(body).
    flux_secret: str | None = Field(default=None, repr=False, min_length=16)
    argocd_url: str | None = None  # e.g. https://argocd.example.com: deployment log links


class NotifySettings(_Section):
    """The outbox that delivers the policy's integrations (bot/notify/)."""

    # Credentials the policy names but never holds: `secret: NAME` -> this map
    # (RITMO_NOTIFY__SECRETS__NAME=...).
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    max_attempts: int = Field(default=8, ge=1, le=100)
    timeout: float = Field(default=10.0, gt=0, le=120)
    # update_gitops_repo into a path or file:// URL on this host (tests, single-host set-ups)
    allow_local_repositories: bool = False


class Settings(BaseSettings):
    """Everything Ritmo reads from its environment, once, at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="RITMO_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    data_dir: Path = Path(".ritmo")
    listen: str = "127.0.0.1:8080"
    database_url: str | None = None  # None: sqlite in data_dir
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    workers: int = Field(default=1, ge=1, le=64)
    threads: int = Field(default=64, ge=1, le=1024)
    # Seconds between runs that re-evaluate every open request (expiry, and reconciliation:
    # a lost webhook delays a promotion by at most one interval).
    scheduler_interval: int = Field(default=300, ge=1)
    # Seconds a replica holds a webhook delivery or notification it is handling (renewed
    # while it works); one that dies lets it go after this, and another replica takes it.
    work_lease: float = Field(default=60.0, ge=1.0, le=3600.0)
    log_format: Literal["json", "text"] = "json"  # JSON lines, or text for a terminal
    manifests: ManifestsSettings = Field(default_factory=ManifestsSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    forge: ForgeSettings = Field(default_factory=ForgeSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    cd: CdSettings = Field(default_factory=CdSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port, e.g. 127.0.0.1:8080")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, the file beats the defaults.
        return (init_settings, env_settings, _YamlFileSource(settings_cls))

    # Resolved paths, so nobody downstream repeats the defaulting.
    @property
    def gnupghome(self) -> Path:
        return (self.signing.gnupghome or self.data_dir / "gnupg").resolve()

    @property
    def tokens_file(self) -> Path:
        return (self.auth.tokens_file or self.data_dir / "tokens.json").resolve()

    @property
    def embedded_remote(self) -> bool:
        return self.manifests.url is None

    @property
    def remote_url(self) -> str:
        return self.manifests.url or str((self.data_dir / "manifests.git").resolve())

    @property
    def index_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'index.sqlite3').resolve()}"


_config_data: ContextVar[dict[str, Any]] = ContextVar("_config_data")


class _YamlFileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _config_data.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_config_data.get({}))


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"config file {path}: {exc.strerror}; pass an existing file to --config or RITMO_CONFIG"
        ) from exc
    try:
        data = bounded_yaml.load(text, str(path))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"config file {path}: not valid YAML: {problem}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of settings")
    return data


# RITMO_* variables that are not settings: the file's name, the client commands' server
# and token, and what the test suite reads (RITMO_TEST_DATABASE_URL).
NOT_SETTINGS = frozenset({"RITMO_CONFIG", "RITMO_SERVER", "RITMO_TOKEN"})
NOT_SETTINGS_PREFIX = "RITMO_TEST_"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """RITMO_* names that name no setting. A known section with an unknown key inside
    (RITMO_MANIFESTS__URLL) is left to the model, which reports it as a setting."""
    known = set(Settings.model_fields)
    found = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith("RITMO_") or upper in NOT_SETTINGS:
            continue
        if upper.startswith(NOT_SETTINGS_PREFIX):
            continue
        if upper.removeprefix("RITMO_").split("__")[0].lower() not in known:
            found.append(name)
    return sorted(found)


def _unknown_variable(name: str) -> str:
    key = name.upper().removeprefix("RITMO_").split("__")[0].lower()
    close = difflib.get_close_matches(key, list(Settings.model_fields), n=1)
    hint = f" (RITMO_{close[0].upper()}?)" if close else ""
    return f"variable {name}: is not a known setting; remove it or check the spelling{hint}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the one Settings object; raise ConfigError with a one-line fix on bad input."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise ConfigError("; ".join(_unknown_variable(name) for name in unknown))
    data = _read_config_file(config_file) if config_file else {}
    token = _config_data.set(data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None
    finally:
        _config_data.reset(token)


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        env = "RITMO_" + "__".join(str(p) for p in err["loc"]).upper()
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "is not a known setting; remove it or check the spelling"
        parts.append(f"setting {key} ({env}): {message}")
    where = f" in {config_file}" if config_file else ""
    return "; ".join(parts) + where
