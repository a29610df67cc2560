"""Tests for pynetdicom2.uids: values from PS3.6 Annex A, names by the documented rule."""

from __future__ import annotations

import inspect
import re

import pydicom
import pytest
from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID

from pynetdicom2 import uids

# uids.py's tables are written from pydicom 3's dictionary (PS3.6 of its release); an
# older pydicom's dictionary lacks the newer classes and syntaxes, so the comparisons
# run against pydicom 3 only.
NEEDS_PYDICOM_3 = pytest.mark.skipif(
    int(pydicom.__version__.split('.')[0]) < 3,
    reason="uids.py is checked against pydicom 3's UID dictionary")

# The spellings pynetdicom2 0.9.x used, and the brief's shorter transfer-syntax names:
# alias -> the standard-named constant it must equal.
ALIASES = {
    'JPEG_EXTENDED_PROCESS_2_4': 'JPEG_EXTENDED_PROCESS_2_AND_4',
    'JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION':
        'JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION_PROCESS_14_SELECTION_VALUE_1',
    'JPEG_LS_LOSSLESS': 'JPEG_LS_LOSSLESS_IMAGE_COMPRESSION',
    'JPEG_LS_LOSSY_NEAR_LOSSLESS': 'JPEG_LS_LOSSY_NEAR_LOSSLESS_IMAGE_COMPRESSION',
    'CR_IMAGE_STORAGE': 'COMPUTED_RADIOGRAPHY_IMAGE_STORAGE',
    'DX_IMAGE_STORAGE_FOR_PRESENTATION': 'DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION',
    'DX_IMAGE_STORAGE_FOR_PROCESSING': 'DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING',
    'MG_IMAGE_STORAGE_FOR_PRESENTATION':
        'DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION',
    'MG_IMAGE_STORAGE_FOR_PROCESSING': 'DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PROCESSING',
    'IO_IMAGE_STORAGE_FOR_PRESENTATION':
        'DIGITAL_INTRA_ORAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION',
    'IO_IMAGE_STORAGE_FOR_PROCESSING': 'DIGITAL_INTRA_ORAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING',
    'LEGACY_ENHANCED_CT_IMAGE_STORAGE': 'LEGACY_CONVERTED_ENHANCED_CT_IMAGE_STORAGE',
    'ULTRASOUND_MULTI_FRAME_IMAGE': 'ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE',
    'ENHANCED_MR_IMAGE': 'ENHANCED_MR_IMAGE_STORAGE',
    'SC_IMAGE_STORAGE': 'SECONDARY_CAPTURE_IMAGE_STORAGE',
    'MULTI_FRAME_SINGLE_BIT_SC_IMAGE_STORAGE':
        'MULTI_FRAME_SINGLE_BIT_SECONDARY_CAPTURE_IMAGE_STORAGE',
    'MULTI_FRAME_GRAYSCALE_BYTE_SC_IMAGE_STORAGE':
        'MULTI_FRAME_GRAYSCALE_BYTE_SECONDARY_CAPTURE_IMAGE_STORAGE',
    'MULTI_FRAME_GRAYSCALE_WORD_SC_IMAGE_STORAGE':
        'MULTI_FRAME_GRAYSCALE_WORD_SECONDARY_CAPTURE_IMAGE_STORAGE',
    'MULTI_FRAME_TRUE_COLOR_SC_IMAGE_STORAGE':
        'MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE',
    'XA_IMAGE_STORAGE': 'X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE',
    'RF_IMAGE_STORAGE': 'X_RAY_RADIOFLUOROSCOPIC_IMAGE_STORAGE',
    'ENHANCED_RF_IMAGE_STORAGE': 'ENHANCED_XRF_IMAGE_STORAGE',
    'NM_IMAGE_STORAGE': 'NUCLEAR_MEDICINE_IMAGE_STORAGE',
    'SPATIAL_REGISTRATION': 'SPATIAL_REGISTRATION_STORAGE',
    'XRAY_RADIATION_DOSE_SR_STORAGE': 'X_RAY_RADIATION_DOSE_SR_STORAGE',
    'PET_IMAGE_STORAGE': 'POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE',
    'DICOS_QR_STORAGE': 'DICOS_QUADRUPOLE_RESONANCE_QR_STORAGE',
    'STORAGE_COMMITMENT_SOP_CLASS': 'STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS',
}

# Service UIDs whose constant names follow the API, not the standard's long names:
# constant -> (value, the name PS3.6 gives it).
SERVICES = {
    'APPLICATION_CONTEXT_NAME': ('1.2.840.10008.3.1.1.1', 'DICOM Application Context Name'),
    'VERIFICATION_SOP_CLASS': ('1.2.840.10008.1.1', 'Verification SOP Class'),
    'PATIENT_ROOT_FIND_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.1.1', 'Patient Root Query/Retrieve Information Model - FIND'),
    'PATIENT_ROOT_MOVE_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.1.2', 'Patient Root Query/Retrieve Information Model - MOVE'),
    'PATIENT_ROOT_GET_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.1.3', 'Patient Root Query/Retrieve Information Model - GET'),
    'STUDY_ROOT_FIND_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.2.1', 'Study Root Query/Retrieve Information Model - FIND'),
    'STUDY_ROOT_MOVE_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.2.2', 'Study Root Query/Retrieve Information Model - MOVE'),
    'STUDY_ROOT_GET_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.2.3', 'Study Root Query/Retrieve Information Model - GET'),
    'PATIENT_STUDY_ONLY_FIND_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.3.1',
        'Patient/Study Only Query/Retrieve Information Model - FIND'),
    'PATIENT_STUDY_ONLY_MOVE_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.3.2',
        'Patient/Study Only Query/Retrieve Information Model - MOVE'),
    'PATIENT_STUDY_ONLY_GET_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.3.3',
        'Patient/Study Only Query/Retrieve Information Model - GET'),
    'COMPOSITE_INSTANCE_ROOT_MOVE_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.4.2', 'Composite Instance Root Retrieve - MOVE'),
    'COMPOSITE_INSTANCE_ROOT_GET_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.4.3', 'Composite Instance Root Retrieve - GET'),
    'COMPOSITE_INSTANCE_RETRIEVE_WITHOUT_BULK_DATA_GET_SOP_CLASS': (
        '1.2.840.10008.5.1.4.1.2.5.3', 'Composite Instance Retrieve Without Bulk Data - GET'),
    'MODALITY_WORK_LIST_INFORMATION_FIND_SOP_CLASS': (
        '1.2.840.10008.5.1.4.31', 'Modality Worklist Information Model - FIND'),
    'STORAGE_COMMITMENT_PUSH_MODEL_SOP_CLASS': (
        '1.2.840.10008.1.20.1', 'Storage Commitment Push Model SOP Class'),
    'STORAGE_COMMITMENT_PUSH_MODEL_SOP_INSTANCE': (
        '1.2.840.10008.1.20.1.1', 'Storage Commitment Push Model SOP Instance'),
    'STORAGE_COMMITMENT_PULL_MODEL_SOP_CLASS': (
        '1.2.840.10008.1.20.2', 'Storage Commitment Pull Model SOP Class'),
    'MODALITY_PERFORMED_PROCEDURE_STEP_SOP_CLASS': (
        '1.2.840.10008.3.1.2.3.3', 'Modality Performed Procedure Step SOP Class'),
    'MODALITY_PERFORMED_PROCEDURE_STEP_RETRIEVE_SOP_CLASS': (
        '1.2.840.10008.3.1.2.3.4', 'Modality Performed Procedure Step Retrieve SOP Class'),
    'MODALITY_PERFORMED_PROCEDURE_STEP_NOTIFICATION_SOP_CLASS': (
        '1.2.840.10008.3.1.2.3.5', 'Modality Performed Procedure Step Notification SOP Class'),
    'INSTANCE_AVAILABILITY_NOTIFICATION_SOP_CLASS': (
        '1.2.840.10008.5.1.4.33', 'Instance Availability Notification SOP Class'),
    'UNIFIED_PROCEDURE_STEP_PUSH_SOP_CLASS': (
        '1.2.840.10008.5.1.4.34.6.1', 'Unified Procedure Step - Push SOP Class'),
    'UNIFIED_PROCEDURE_STEP_WATCH_SOP_CLASS': (
        '1.2.840.10008.5.1.4.34.6.2', 'Unified Procedure Step - Watch SOP Class'),
    'UNIFIED_PROCEDURE_STEP_PULL_SOP_CLASS': (
        '1.2.840.10008.5.1.4.34.6.3', 'Unified Procedure Step - Pull SOP Class'),
    'UNIFIED_PROCEDURE_STEP_EVENT_SOP_CLASS': (
        '1.2.840.10008.5.1.4.34.6.4', 'Unified Procedure Step - Event SOP Class'),
    'UNIFIED_PROCEDURE_STEP_QUERY_SOP_CLASS': (
        '1.2.840.10008.5.1.4.34.6.5', 'Unified Procedure Step - Query SOP Class'),
}

GROUPS = {'ALL_TS', 'DEFAULT_TS', 'UNCOMPRESSED_TS', 'STORAGE_SOP_CLASSES',
          'GET_SOP_CLASSES', 'QR_GET_SOP_CLASSES'}


def standard_name_to_constant(name: str) -> str:
    """The naming rule of the module docstring, written independently of the module."""
    name = name.replace('(Retired)', '').strip()
    if name.startswith('12-'):
        name = 'Twelve-' + name[3:]
    return re.sub('[^A-Za-z0-9]+', '_', name).strip('_').upper()


def is_storage_name(name: str) -> bool:
    return name.endswith('Storage') or 'Storage - ' in name


def public_uids():
    return {name: getattr(uids, name) for name in uids.__all__ if name not in GROUPS}


def test_all_lists_every_public_constant_and_nothing_else():
    constants = {name for name, value in vars(uids).items()
                 if name.isupper() and isinstance(value, (str, tuple))}
    assert set(uids.__all__) == constants
    assert 'UID' not in uids.__all__
    assert GROUPS <= constants
    assert len(uids.__all__) == len(set(uids.__all__))


def test_star_import_gives_the_constants():
    namespace = {}
    exec('from pynetdicom2.uids import *', namespace)  # noqa: S102
    assert namespace['CT_IMAGE_STORAGE'] == '1.2.840.10008.5.1.4.1.1.2'
    assert 'UID' not in namespace


def test_every_constant_is_a_valid_pydicom_uid():
    for name, value in public_uids().items():
        assert type(value) is UID, name
        assert value.is_valid, name


@NEEDS_PYDICOM_3
def test_every_constant_is_named_after_the_standard():
    wrong = {}
    for name, value in public_uids().items():
        canonical = ALIASES.get(name, name)  # an alias answers for its target's name
        if canonical in SERVICES:
            continue
        standard_name, _, _, retired, _ = UID_dictionary[value]
        expected = standard_name_to_constant(standard_name)
        if retired and canonical == expected + '_RETIRED':
            expected = canonical
        if canonical != expected:
            wrong[name] = expected
    assert wrong == {}
    assert len(public_uids()) > 250


def test_aliases_equal_their_standard_named_constant():
    for alias, target in ALIASES.items():
        assert getattr(uids, alias) == getattr(uids, target), alias
        assert alias in uids.__all__ and target in uids.__all__


@pytest.mark.parametrize('name', sorted(SERVICES))
def test_service_uids(name):
    value, standard_name = SERVICES[name]
    assert getattr(uids, name) == value
    assert UID_dictionary[value][0] == standard_name


def test_retired_suffix_only_where_a_current_uid_shares_the_name():
    suffixed = {n: v for n, v in public_uids().items() if n.endswith('_RETIRED')}
    assert suffixed == {
        'ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE_RETIRED': '1.2.840.10008.5.1.4.1.1.3',
        'NUCLEAR_MEDICINE_IMAGE_STORAGE_RETIRED': '1.2.840.10008.5.1.4.1.1.5',
        'ULTRASOUND_IMAGE_STORAGE_RETIRED': '1.2.840.10008.5.1.4.1.1.6',
    }
    # The unsuffixed names are the current UIDs.
    assert uids.ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE == '1.2.840.10008.5.1.4.1.1.3.1'
    assert uids.NUCLEAR_MEDICINE_IMAGE_STORAGE == '1.2.840.10008.5.1.4.1.1.20'
    assert uids.ULTRASOUND_IMAGE_STORAGE == '1.2.840.10008.5.1.4.1.1.6.1'


@pytest.mark.parametrize('name, value', [
    # Values as PS3.6 Annex A gives them, typed in here.
    ('IMPLICIT_VR_LITTLE_ENDIAN', '1.2.840.10008.1.2'),
    ('EXPLICIT_VR_LITTLE_ENDIAN', '1.2.840.10008.1.2.1'),
    ('EXPLICIT_VR_BIG_ENDIAN', '1.2.840.10008.1.2.2'),
    ('DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN', '1.2.840.10008.1.2.1.99'),
    ('JPEG_BASELINE_PROCESS_1', '1.2.840.10008.1.2.4.50'),
    ('JPEG_EXTENDED_PROCESS_2_4', '1.2.840.10008.1.2.4.51'),
    ('JPEG_LOSSLESS_NON_HIERARCHICAL_PROCESS_14', '1.2.840.10008.1.2.4.57'),
    ('JPEG_LOSSLESS_NON_HIERARCHICAL_FIRST_ORDER_PREDICTION', '1.2.840.10008.1.2.4.70'),
    ('JPEG_LS_LOSSLESS', '1.2.840.10008.1.2.4.80'),
    ('JPEG_LS_LOSSY_NEAR_LOSSLESS', '1.2.840.10008.1.2.4.81'),
    ('JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY', '1.2.840.10008.1.2.4.90'),
    ('JPEG_2000_IMAGE_COMPRESSION', '1.2.840.10008.1.2.4.91'),
    ('RLE_LOSSLESS', '1.2.840.10008.1.2.5'),
    ('MPEG2_MAIN_PROFILE_MAIN_LEVEL', '1.2.840.10008.1.2.4.100'),
    ('HIGH_THROUGHPUT_JPEG_2000_IMAGE_COMPRESSION_LOSSLESS_ONLY', '1.2.840.10008.1.2.4.201'),
    ('COMPUTED_RADIOGRAPHY_IMAGE_STORAGE', '1.2.840.10008.5.1.4.1.1.1'),
    ('CT_IMAGE_STORAGE', '1.2.840.10008.5.1.4.1.1.2'),
    ('ENHANCED_CT_IMAGE_STORAGE', '1.2.840.10008.5.1.4.1.1.2.1'),
    ('MR_IMAGE_STORAGE', '1.2.840.10008.5.1.4.1.1.4'),
    ('SECONDARY_CAPTURE_IMAGE_STORAGE', '1.2.840.10008.5.1.4.1.1.7'),
    ('TWELVE_LEAD_ECG_WAVEFORM_STORAGE', '1.2.840.10008.5.1.4.1.1.9.1.1'),
    ('X_RAY_ANGIOGRAPHIC_IMAGE_STORAGE', '1.2.840.10008.5.1.4.1.1.12.1'),
    ('DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION', '1.2.840.10008.5.1.4.1.1.1.1'),
    ('POSITRON_EMISSION_TOMOGRAPHY_IMAGE_STORAGE', '1.2.840.10008.5.1.4.1.1.128'),
    ('BASIC_TEXT_SR_STORAGE', '1.2.840.10008.5.1.4.1.1.88.11'),
    ('COMPREHENSIVE_SR_STORAGE', '1.2.840.10008.5.1.4.1.1.88.33'),
    ('ENCAPSULATED_PDF_STORAGE', '1.2.840.10008.5.1.4.1.1.104.1'),
    ('RT_DOSE_STORAGE', '1.2.840.10008.5.1.4.1.1.481.2'),
    ('RT_STRUCTURE_SET_STORAGE', '1.2.840.10008.5.1.4.1.1.481.3'),
    ('RT_PLAN_STORAGE', '1.2.840.10008.5.1.4.1.1.481.5'),
    ('XA_XRF_GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE', '1.2.840.10008.5.1.4.1.1.11.5'),
    ('PSEUDO_COLOR_SOFTCOPY_PRESENTATION_STATE_STORAGE', '1.2.840.10008.5.1.4.1.1.11.3'),
    ('STANDALONE_PET_CURVE_STORAGE', '1.2.840.10008.5.1.4.1.1.129'),
])
def test_known_values(name, value):
    assert getattr(uids, name) == value


@NEEDS_PYDICOM_3
def test_storage_sop_classes_is_every_storage_class_of_the_dictionary():
    expected = [uid for uid, (name, kind, *_) in UID_dictionary.items()
                if kind == 'SOP Class' and name and is_storage_name(name)]
    assert list(uids.STORAGE_SOP_CLASSES) == expected, (
        "pydicom's UID dictionary changed: regenerate the storage block of uids.py")
    assert len(uids.STORAGE_SOP_CLASSES) >= 140
    assert len(set(uids.STORAGE_SOP_CLASSES)) == len(uids.STORAGE_SOP_CLASSES)
    assert isinstance(uids.STORAGE_SOP_CLASSES, tuple)


@NEEDS_PYDICOM_3
def test_every_storage_constant_is_in_storage_sop_classes():
    storage = set(uids.STORAGE_SOP_CLASSES)
    for name, value in public_uids().items():
        if name in SERVICES or UID_dictionary[value][1] != 'SOP Class':
            continue
        assert (value in storage) == is_storage_name(UID_dictionary[value][0]), name
    for value in uids.STORAGE_SOP_CLASSES:
        assert type(value) is UID
    assert uids.VERIFICATION_SOP_CLASS not in storage


def test_every_transfer_syntax_of_the_dictionary_has_a_constant():
    values = set(public_uids().values())
    missing = [name for uid, (name, kind, *_) in UID_dictionary.items()
               if kind == 'Transfer Syntax' and uid not in values]
    assert missing == []


def test_uncompressed_and_default_ts():
    assert uids.UNCOMPRESSED_TS == (
        '1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2')
    assert uids.DEFAULT_TS == (
        '1.2.840.10008.1.2.1', '1.2.840.10008.1.2', '1.2.840.10008.1.2.2')
    assert isinstance(uids.DEFAULT_TS, tuple) and isinstance(uids.UNCOMPRESSED_TS, tuple)


def test_get_sop_classes_are_every_c_get_retrieve_class_pydicom_names():
    # PS3.4 C.4.3, Annex Y, Annex Z: each "... - GET" SOP class retrieves with C-GET.
    named = {uid for uid, (name, kind, *_) in UID_dictionary.items()
             if kind == 'SOP Class' and uid.startswith('1.2.840.10008.5.1.4.1.2.')
             and name.rstrip(' (Retired)').endswith('GET')}
    assert set(uids.GET_SOP_CLASSES) == named
    assert uids.QR_GET_SOP_CLASSES == (
        '1.2.840.10008.5.1.4.1.2.1.3', '1.2.840.10008.5.1.4.1.2.2.3',
        '1.2.840.10008.5.1.4.1.2.3.3')


@NEEDS_PYDICOM_3
def test_all_ts():
    all_ts = uids.ALL_TS
    assert isinstance(all_ts, tuple)
    assert all_ts[:3] == uids.DEFAULT_TS
    assert len(set(all_ts)) == len(all_ts)
    for value in all_ts:
        name, kind, _, retired, _ = UID_dictionary[value]
        assert kind == 'Transfer Syntax', value
        assert not retired or value == uids.EXPLICIT_VR_BIG_ENDIAN, name
    # Every current syntax that encodes a data set is in; real-time video is not.
    left_out = {uid for uid, (name, kind, _, retired, _) in UID_dictionary.items()
                if kind == 'Transfer Syntax' and not retired and uid not in all_ts}
    assert left_out == {
        uids.SMPTE_ST_2110_20_UNCOMPRESSED_PROGRESSIVE_ACTIVE_VIDEO,
        uids.SMPTE_ST_2110_20_UNCOMPRESSED_INTERLACED_ACTIVE_VIDEO,
        uids.SMPTE_ST_2110_30_PCM_DIGITAL_AUDIO,
    }
    for value in (uids.RFC_2557_MIME_ENCAPSULATION, uids.XML_ENCODING,
                  uids.PAPYRUS_3_IMPLICIT_VR_LITTLE_ENDIAN,
                  uids.JPEG_EXTENDED_PROCESS_3_AND_5):
        assert value not in all_ts
    for value in (uids.JPEG_BASELINE_PROCESS_1, uids.RLE_LOSSLESS,
                  uids.JPEG_2000_IMAGE_COMPRESSION, uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN):
        assert value in all_ts


@NEEDS_PYDICOM_3
def test_pydicom_agrees_on_the_transfer_syntax_properties():
    assert all(ts.is_transfer_syntax for ts in uids.ALL_TS)
    assert all(not ts.is_compressed for ts in uids.UNCOMPRESSED_TS)
    assert uids.JPEG_BASELINE_PROCESS_1.is_compressed
    assert uids.IMPLICIT_VR_LITTLE_ENDIAN.is_implicit_VR
    assert not uids.EXPLICIT_VR_BIG_ENDIAN.is_little_endian


def test_module_does_not_import_pydicom_private_modules():
    source = inspect.getsource(uids)
    assert '_uid_dict' not in source
    imports = [line for line in source.splitlines()
               if re.match(r'\s*(from|import)\s', line)]
    assert imports == ['from __future__ import annotations', 'from pydicom.uid import UID']
