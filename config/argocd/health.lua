-- Argo CD health check for iam.aws-auth-guardian.dev/IAMIdentityMapping.
--
-- Install it as the argocd-cm key
--   resource.customizations.health.iam.aws-auth-guardian.dev_IAMIdentityMapping
-- (argocd-cm-patch.yaml next to this file embeds this exact text; a test
-- keeps the two equal). Argo CD runs it with the global obj set to the live
-- object and reads the table it returns.
--
-- It reads the status the way kstatus does (kubectl wait, Flux), so that Argo
-- CD and those tools agree: a status about an older spec is Progressing,
-- Stalled=True is Degraded, Reconciling=True is Progressing, Ready=True is
-- Healthy. It needs no Lua standard library (Argo CD opens only base and
-- table for scripts from argocd-cm), so it uses no string.* function.

local hs = {}

-- Ready=False reasons that no retry fixes: the spec, a conflicting mapping,
-- or a person (for a blocked render) must act. The operator also sets
-- Stalled=True with them; these cover a status written without it.
local terminalReasons = {
  Invalid = true,
  Conflict = true,
  Blocked = true,
  RenderFailed = true,
  TooLarge = true,
}

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

-- describe is "Reason: message", or whichever of the two is set.
local function describe(condition, fallback)
  local reason = condition.reason
  local message = condition.message
  if reason ~= nil and reason ~= "" and message ~= nil and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= nil and message ~= "" then
    return message
  end
  if reason ~= nil and reason ~= "" then
    return reason
  end
  return fallback
end

local generation = nil
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = tonumber(obj.metadata.generation)
end
local observedGeneration = nil
if obj.status ~= nil and obj.status.observedGeneration ~= nil then
  observedGeneration = tonumber(obj.status.observedGeneration)
end

if obj.status == nil or observedGeneration == nil or (generation ~= nil and observedGeneration < generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. generation
  else
    hs.message = "Waiting for the operator to observe the mapping"
  end
  return hs
end

local conditions = obj.status.conditions
local stalled = findCondition(conditions, "Stalled")
local reconciling = findCondition(conditions, "Reconciling")
local ready = findCondition(conditions, "Ready")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "The mapping cannot be applied until its spec changes")
  return hs
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to remove the entry from aws-auth"
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "The operator is applying the mapping")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "The entry is in aws-auth")
  return hs
end

if ready ~= nil and ready.status == "False" and terminalReasons[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready, "The mapping is not in aws-auth")
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Waiting for the operator to apply the mapping")
else
  hs.message = "Waiting for the operator to apply the mapping"
end
return hs
