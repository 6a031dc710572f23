"""What a webhook handler acts through: only the parts of Ritmo handlers use.

The Runtime satisfies it structurally (mypy checks it where the worker is built), so
this package never imports the runtime module, and a test can hand a handler a fake.
Read-only properties: a fake may hold plain attributes, and nothing here reassigns them.
"""

from __future__ import annotations

from typing import Protocol

from bot.config import Settings
from bot.deploy.service import DeploymentService
from bot.forge import Forge
from bot.manifests.writer import ManifestWriter
from bot.policy.source import PolicySource
from bot.promotions.requests import RequestService
from bot.promotions.service import PromotionService
from bot.promotions.view import EnvironmentsView
from bot.store.index import ArtifactIndex
from bot.store.request_index import RequestIndex
from bot.trust.watch import DriftWatch


class HandlerContext(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def forge(self) -> Forge: ...

    @property
    def index(self) -> ArtifactIndex: ...

    @property
    def policy(self) -> PolicySource: ...

    @property
    def writer(self) -> ManifestWriter: ...

    @property
    def drift(self) -> DriftWatch: ...

    @property
    def promotions(self) -> PromotionService: ...

    @property
    def requests(self) -> RequestService: ...

    @property
    def requests_index(self) -> RequestIndex: ...

    @property
    def deployments(self) -> DeploymentService: ...

    @property
    def environments(self) -> EnvironmentsView: ...
