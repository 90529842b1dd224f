// Key Vault for xdrsync's secrets: the webhook key (x-xdrsync-key) and the app registration's client
// secret when one is used; the Functions key the playbook calls with is added after publishing
// (function-key.bicep: a host key cannot be created before the app has code). Access is RBAC only:
// xdrsync's principals get Key Vault Secrets User (the app settings reference the secrets as
// @Microsoft.KeyVault(SecretUri=…), resolved with the app's user-assigned identity); the playbook's
// identity gets the same role on each secret it sends (playbook.bicep, function-key.bicep). App
// settings name a secret version, so a new value (a redeployment) changes the setting and
// restarts the app instead of waiting for the platform's refresh.

param location string
param prefix string

@secure()
param webhookKey string

@description('Empty: no client secret is stored (the app uses its managed identity).')
@secure()
param clientSecret string

@description('Object ids of the principals xdrsync runs as (each reads the secrets).')
param appPrincipalIds array

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

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in appPrincipalIds: {
  name: guid(vault.id, principalId, secretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

output name string = vault.name
output vaultUri string = vault.properties.vaultUri
output webhookKeyUri string = webhookSecret.properties.secretUriWithVersion
output clientSecretUri string = empty(clientSecret) ? '' : clientSecretSecret.properties.secretUriWithVersion
