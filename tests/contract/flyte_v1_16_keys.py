"""Config keys flyte-binary v1.16 reads, for checking the rendered config files against.

flyte-binary loads its config with strict mode off, so an unknown or misspelt key is silently
ignored; this list catches that before a deploy does. Sources (flyteorg/flyte, 1.16 line):
- docs/deployment/configuration/generated/flyteadmin_config.rst and flytepropeller_config.rst
  (the generated references of every section and key), at commit 0263abc0;
- cmd/single/config.go (the `flyte` section of the single binary);
- flytestdlib/storage/config.go (`storage`), flyteplugins/go/tasks/pluginmachinery/flytek8s/
  config/config.go (`plugins.k8s`), flyteadmin/pkg/runtime/interfaces (`cluster_resources`,
  `domains`, `namespace_mapping`);
- charts/flyte-binary/templates/configmap.yaml at v1.16.4 (the keys the chart itself renders);
- auth (v1.16.8): flyteadmin/auth/config/config.go (`auth`), flyteadmin/pkg/config/config.go
  (`server.security.useAuth`), flyteidl/clients/go/admin/config.go (the `admin` client's login),
  and github.com/ory/fosite v0.42.2 client.go (DefaultClient, a static client's keys).
"""

from __future__ import annotations

# Leaf keys (dotted paths). Lists are leaves.
LEAVES = frozenset(
    {
        "admin.endpoint",
        "admin.insecure",
        "admin.authType",
        "admin.clientId",
        "admin.clientSecretLocation",
        "auth.appAuth.authServerType",
        "auth.authorizedUris",
        "auth.userAuth.openId.baseUrl",
        "auth.userAuth.openId.clientId",
        "auth.userAuth.openId.scopes",
        "server.security.useAuth",
        "catalog-cache.endpoint",
        "catalog-cache.insecure",
        "catalog-cache.type",
        "cluster_resources.standaloneDeployment",
        "cluster_resources.templatePath",
        "cluster_resources.refreshInterval",
        "domains",
        "namespace_mapping.template",
        "logger.show-source",
        "logger.level",
        "propeller.create-flyteworkflow-crd",
        "propeller.prof-port",
        "propeller.rawoutput-prefix",
        "propeller.metadata-prefix",
        "flyte.admin.disabled",
        "flyte.admin.disableScheduler",
        "flyte.admin.disableClusterResourceManager",
        "flyte.admin.seedProjects",
        "flyte.admin.seedProjectsWithDetails",
        "flyte.dataCatalog.disabled",
        "flyte.propeller.disabled",
        "flyte.propeller.disableWebhook",
        "tasks.task-plugins.enabled-plugins",
        "plugins.logs.kubernetes-enabled",
        "plugins.logs.cloudwatch-enabled",
        "plugins.logs.stackdriver-enabled",
        "plugins.k8s.co-pilot.image",
        "plugins.k8s.default-env-from-secrets",
        "database.postgres.username",
        "database.postgres.host",
        "database.postgres.port",
        "database.postgres.dbname",
        "database.postgres.options",
        "database.postgres.password",
        "database.postgres.passwordPath",
        "storage.type",
        "storage.container",
        "storage.enable-multicontainer",
        "storage.stow.kind",
    }
)
# Free-form maps: any key below these is the user's own name.
MAPS = frozenset(
    {
        "cluster_resources.templateData",
        "tasks.task-plugins.default-for-task-types",
        "plugins.k8s.default-env-vars",
        "storage.stow.config",
        "auth.appAuth.selfAuthServer.staticClients",
    }
)
# Keys of a static client (fosite DefaultClient's JSON names) below
# auth.appAuth.selfAuthServer.staticClients.<name>.
STATIC_CLIENT_KEYS = frozenset(
    {
        "id",
        "client_secret",
        "rotated_secrets",
        "redirect_uris",
        "grant_types",
        "response_types",
        "scopes",
        "audience",
        "public",
    }
)
# Keys the stow S3 client understands inside storage.stow.config (graymeta/stow s3 config).
STOW_S3_KEYS = frozenset(
    {
        "auth_type",
        "access_key_id",
        "secret_key",
        "region",
        "endpoint",
        "disable_ssl",
        "v2_signing",
    }
)
