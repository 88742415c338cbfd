//! vigild's own types to the control protocol's. Every struct is destructured in full, so a
//! field added on either side is a compile error here rather than a key silently missing from
//! `vigilctl --json`.

use vigil_control::{
    Level,
    reply::{
        CpuFeatures, GovernorStatus, HostFacts, JwksStatus, KeyMode, NicFacts, SensorError,
        SensorKind, SensorReading, SensorScan, ShadowEntry, ThermalThresholds,
    },
};
use vigil_hw::thermal as hw;

/// Converts one of vigild's types into the control protocol's.
pub(crate) trait ToControl {
    type Out;
    fn to_control(self) -> Self::Out;
}

pub(crate) fn to_control<T: ToControl>(v: T) -> T::Out {
    v.to_control()
}

pub(crate) fn hw_level(l: Level) -> hw::Level {
    match l {
        Level::Full => hw::Level::Full,
        Level::Reduced => hw::Level::Reduced,
        Level::Minimal => hw::Level::Minimal,
        Level::Shed => hw::Level::Shed,
    }
}

impl ToControl for hw::Level {
    type Out = Level;
    fn to_control(self) -> Level {
        match self {
            hw::Level::Full => Level::Full,
            hw::Level::Reduced => Level::Reduced,
            hw::Level::Minimal => Level::Minimal,
            hw::Level::Shed => Level::Shed,
        }
    }
}

impl<T: ToControl> ToControl for Vec<T> {
    type Out = Vec<T::Out>;
    fn to_control(self) -> Self::Out {
        self.into_iter().map(ToControl::to_control).collect()
    }
}

impl<T: ToControl> ToControl for Option<T> {
    type Out = Option<T::Out>;
    fn to_control(self) -> Self::Out {
        self.map(ToControl::to_control)
    }
}

impl ToControl for vigil_hw::keys::KeyMode {
    type Out = KeyMode;
    fn to_control(self) -> KeyMode {
        use vigil_hw::keys::KeyMode as M;
        match self {
            M::File => KeyMode::File,
            M::TpmSealed => KeyMode::TpmSealed,
            M::TpmResident => KeyMode::TpmResident,
        }
    }
}

impl ToControl for hw::GovernorStatus {
    type Out = GovernorStatus;
    fn to_control(self) -> GovernorStatus {
        let hw::GovernorStatus {
            level,
            thermal_level,
            temperature_c,
            sensors,
            sensor_errors,
            override_level,
            override_remaining_ms,
            message,
        } = self;
        GovernorStatus {
            level: level.to_control(),
            thermal_level: thermal_level.to_control(),
            temperature_c,
            sensors,
            sensor_errors,
            override_level: override_level.to_control(),
            override_remaining_ms,
            message,
        }
    }
}

impl ToControl for hw::ThermalConfig {
    type Out = ThermalThresholds;
    fn to_control(self) -> ThermalThresholds {
        let hw::ThermalConfig {
            reduced_c,
            minimal_c,
            shed_c,
            hysteresis_c,
            poll_interval_ms,
            sensors,
        } = self;
        ThermalThresholds {
            reduced_c,
            minimal_c,
            shed_c,
            hysteresis_c,
            poll_interval_ms,
            sensors,
        }
    }
}

impl ToControl for hw::SensorScan {
    type Out = SensorScan;
    fn to_control(self) -> SensorScan {
        let hw::SensorScan { readings, errors } = self;
        SensorScan {
            readings: readings.to_control(),
            errors: errors.to_control(),
        }
    }
}

impl ToControl for hw::SensorReading {
    type Out = SensorReading;
    fn to_control(self) -> SensorReading {
        let hw::SensorReading {
            id,
            name,
            chip,
            kind,
            celsius,
            crit_celsius,
        } = self;
        SensorReading {
            id,
            name,
            chip,
            kind: match kind {
                hw::SensorKind::ThermalZone => SensorKind::ThermalZone,
                hw::SensorKind::Hwmon => SensorKind::Hwmon,
            },
            celsius,
            crit_celsius,
        }
    }
}

impl ToControl for hw::SensorError {
    type Out = SensorError;
    fn to_control(self) -> SensorError {
        let hw::SensorError { path, detail } = self;
        SensorError { path, detail }
    }
}

impl ToControl for vigil_hw::HostFacts {
    type Out = HostFacts;
    fn to_control(self) -> HostFacts {
        let vigil_hw::HostFacts {
            cpu,
            cpu_warnings,
            logical_cpus,
            kernel,
            memory_total_bytes,
            nics,
            temperatures,
            firmware,
        } = self;
        let vigil_hw::CpuFeatures {
            aes_ni,
            pclmulqdq,
            avx2,
            avx512f,
            sha,
        } = cpu;
        HostFacts {
            cpu: CpuFeatures {
                aes_ni,
                pclmulqdq,
                avx2,
                avx512f,
                sha,
            },
            cpu_warnings,
            logical_cpus,
            kernel,
            memory_total_bytes,
            nics: nics.to_control(),
            temperatures: temperatures.to_control(),
            firmware: firmware.map(|vigil_hw::facts::Firmware { version, slot }| {
                vigil_control::reply::Firmware { version, slot }
            }),
        }
    }
}

impl ToControl for vigil_hw::NicFacts {
    type Out = NicFacts;
    fn to_control(self) -> NicFacts {
        let vigil_hw::NicFacts {
            name,
            driver,
            is_virtual,
            rx_queues,
            tx_queues,
            mtu,
            operstate,
            native_xdp,
        } = self;
        NicFacts {
            name,
            driver,
            is_virtual,
            rx_queues,
            tx_queues,
            mtu,
            operstate,
            native_xdp,
        }
    }
}

impl ToControl for vigil_identity::JwksStatus {
    type Out = JwksStatus;
    fn to_control(self) -> JwksStatus {
        let vigil_identity::JwksStatus {
            location,
            keys,
            seconds_since_fetch,
            last_error,
            fetches,
            failed_fetches,
            generation,
        } = self;
        JwksStatus {
            location,
            keys,
            seconds_since_fetch,
            last_error,
            fetches,
            failed_fetches,
            generation,
        }
    }
}

impl ToControl for vigil_policy::ShadowEntry {
    type Out = ShadowEntry;
    fn to_control(self) -> ShadowEntry {
        let vigil_policy::ShadowEntry {
            method,
            path,
            count,
            first_seen,
            last_seen,
            statuses,
            clients,
            more_clients,
        } = self;
        ShadowEntry {
            method,
            path,
            count,
            first_seen,
            last_seen,
            statuses,
            clients,
            more_clients,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::IpAddr;

    use serde::Serialize;

    use super::*;

    /// vigil-hw's JSON and the protocol's are the same document.
    fn same_json<T: ToControl + Serialize + Clone>(v: T)
    where
        T::Out: Serialize,
    {
        let want = serde_json::to_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(v.to_control()).unwrap(), want);
    }

    #[test]
    fn converted_values_serialize_as_before() {
        same_json(vigil_hw::HostFacts::collect(&hw::SysfsRoot::new("/sys")));
        same_json(hw::ThermalConfig::default());
        same_json(vigil_hw::keys::KeyMode::TpmSealed);
        same_json(hw::GovernorStatus {
            level: hw::Level::Minimal,
            thermal_level: hw::Level::Reduced,
            temperature_c: Some(85.5),
            sensors: 2,
            sensor_errors: vec!["x".into()],
            override_level: Some(hw::Level::Minimal),
            override_remaining_ms: Some(1200),
            message: "forced".into(),
        });
        same_json(hw::SensorScan {
            readings: vec![hw::SensorReading {
                id: "hwmon1/temp1".into(),
                name: "coretemp/Package id 0".into(),
                chip: "coretemp".into(),
                kind: hw::SensorKind::Hwmon,
                celsius: 45.0,
                crit_celsius: Some(100.0),
            }],
            errors: vec![hw::SensorError {
                path: "/sys/x".into(),
                detail: "EIO".into(),
            }],
        });
        same_json(vigil_identity::JwksStatus {
            location: "https://id.test/jwks".into(),
            keys: 2,
            seconds_since_fetch: None,
            last_error: Some("timed out".into()),
            fetches: 3,
            failed_fetches: 1,
            generation: 4,
        });
        same_json(vigil_policy::ShadowEntry {
            method: "GET".into(),
            path: "/v2/{id}".into(),
            count: 3,
            first_seen: 1,
            last_seen: 2,
            statuses: vec![404],
            clients: vec![IpAddr::from([192, 0, 2, 1])],
            more_clients: true,
        });
        for l in hw::Level::ALL {
            same_json(l);
            assert_eq!(hw_level(l.to_control()), l);
        }
    }
}
