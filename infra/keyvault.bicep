// Key Vault for xdrsync's secrets: the webhook key (x-xdrsync-key), the Functions key the playbook
// calls with, and the app registration's client secret when one is used. Access is RBAC only: the
// Function App's identity gets Key Vault Secrets User (its app settings reference the secrets as
// @Microsoft.KeyVault(SecretUri=…)); the playbook's identity gets the same role on the two secrets
// it sends (playbook.bicep). App settings name a secret version, so a new value (a redeployment)
// changes the setting and restarts the app instead of waiting for the platform's refresh.

param location string
param prefix string

@secure()
param webhookKey string

@secure()
param functionKey string

@description('Empty: no client secret is stored (the app uses its managed identity).')
@secure()
param clientSecret string

param appPrincipalId string

var secretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no firewall: the Consumption plans’ Key Vault references and the Logic App come from shared, changing Azure addresses; access needs an Entra token with a role.
  // checkov:skip=CKV_AZURE_189: public network access stays enabled for the same reason (no VNet on the Consumption plans).
  // checkov:skip=CKV2_AZURE_32: no private endpoint, for the same reason.
  name: '${prefix}-xdrsync-${take(uniqueString(resourceGroup().id), 6)}'
  location: location
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource webhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: no expiry: the app and the playbook read the key on every start and call; an expired secret cannot be read and would stop the webhook. Rotate by redeploying with a new webhookKey.
  parent: vault
  name: 'xdrsync-webhook-key'
  properties: {
    value: webhookKey
    contentType: 'text/plain; x-xdrsync-key'
  }
}

resource functionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: no expiry, as for the webhook key; each deployment sets a new value unless functionKey is given.
  parent: vault
  name: 'xdrsync-function-key'
  properties: {
    value: functionKey
    contentType: 'text/plain; x-functions-key'
  }
}

resource clientSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(clientSecret)) {
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not evaluate this conditional resource’s properties.
  // checkov:skip=CKV_AZURE_41: the client secret’s expiry is the app registration’s; Key Vault only holds a copy.
  parent: vault
  name: 'xdrsync-client-secret'
  properties: {
    value: clientSecret
    contentType: 'text/plain; client secret'
  }
}

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output vaultUri string = vault.properties.vaultUri
output webhookKeyUri string = webhookSecret.properties.secretUriWithVersion
output clientSecretUri string = empty(clientSecret) ? '' : clientSecretSecret.properties.secretUriWithVersion
