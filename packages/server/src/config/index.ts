/** The configuration module: types and defaults, loading (file < environment < flags), validation. */
export {
  DEFAULT_CONFIG,
  DEFAULT_NAMESPACE,
  DEFAULT_NAMESPACE_OPTIONS,
  ENGINES,
  LOG_LEVELS,
  PLANNED_ENGINES,
  namespaceOptions,
  type ConfigInput,
  type DurationInput,
  type EngineName,
  type HeartbeatOptions,
  type HeraldConfig,
  type LimitsOptions,
  type LogLevel,
  type NamespaceInput,
  type NamespaceOptions,
  type ShutdownOptions,
  type SizeInput,
} from './config.js';
export { formatDuration, formatSize, parseDuration, parseSize } from './duration.js';
export {
  ENV_VARIABLES,
  envVarName,
  loadConfig,
  parseServeFlags,
  resolveConfig,
  type FlagValues,
  type LoadConfigOptions,
  type LoadedConfig,
} from './load-config.js';
export { ConfigError, MIN_API_KEY_LENGTH, formatIssue, type ConfigIssue, type SettingPath } from './schema.js';
